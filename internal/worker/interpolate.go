package worker

import "strings"

// Environment variable interpolation, as Spacelift documents it: the value
// of a stack's or context's variable may refer to another variable of the
// run's environment as ${NAME} ("${FOO}-baz" is "bar-baz" when FOO is
// "bar"). It is done on the worker, for each stage, once the variables of
// every source are merged:
//
//   - NAME is any variable the run gets in that stage: the stack's, its
//     contexts', those of its cloud integrations, the run's facts
//     (TF_VAR_spacelift_run_id, GANTRY_RUN_ID, ...) and what the worker's
//     own environment passes on (PATH, HOME); ro_X and wo_X are X in their
//     stage.
//   - The order variables are defined in does not matter, and a reference
//     to a variable that itself refers to others is resolved in turn.
//   - A variable referring to itself (PATH = "${PATH}:/opt/bin"), directly
//     or through others, gets the value it would have without the run's
//     variables (the worker's PATH), or stays as written if there is none.
//   - A reference to a name the run does not have, or that is no variable
//     name (${var.x}, ${ upper(x) }: HCL templates), stays as written.
//   - $${ is a literal ${ (as in HCL): "$${FOO}" is "${FOO}".
//
// Only the values of the stack's and contexts' variables are expanded: the
// integrations' and the run's facts are taken as they are.

// interpolate returns vars with the ${NAME} references in their values
// expanded against base (the environment before the run's variables, as
// KEY=VALUE; the last of a name wins) and vars themselves, and the names
// whose value changed.
func interpolate(base []string, vars []stageVar) ([]stageVar, []string) {
	before := map[string]string{}
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok {
			before[k] = v
		}
	}
	raw := map[string]stageVar{}
	for _, v := range vars {
		raw[v.name] = v
	}
	// Each variable is expanded as the root of its own expansion: a
	// reference back to a variable being expanded is that variable's value
	// without the run's variables. A value is kept for the other roots only
	// when its expansion met no variable being expanded: the values of
	// variables in a cycle depend on where the expansion started.
	visiting := map[string]bool{}
	memo := map[string]string{}
	var resolve func(name string) (val string, ok, cyclic bool)
	resolve = func(name string) (string, bool, bool) {
		v, own := raw[name]
		if !own {
			val, ok := before[name]
			return val, ok, false
		}
		if val, ok := memo[name]; ok {
			return val, true, false
		}
		if visiting[name] {
			val, ok := before[name]
			return val, ok, true
		}
		if v.rank < 0 {
			memo[name] = v.value
			return v.value, true, false
		}
		visiting[name] = true
		cyclic := false
		val := expand(v.value, func(n string) (string, bool) {
			val, ok, c := resolve(n)
			cyclic = cyclic || c
			return val, ok
		})
		delete(visiting, name)
		if !cyclic {
			memo[name] = val
		}
		return val, true, cyclic
	}
	out := make([]stageVar, len(vars))
	var changed []string
	for i, v := range vars {
		val, _, _ := resolve(v.name)
		if val != v.value {
			changed = append(changed, v.name)
		}
		v.value = val
		out[i] = v
	}
	return out, changed
}

// expand replaces the ${NAME} references of s that lookup knows, and $${
// by ${.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		if i > 0 && s[i-1] == '$' {
			// $${: a literal ${.
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i+2:], '}')
		if end >= 0 {
			name := s[i+2 : i+2+end]
			if validVarName(name) {
				if val, ok := lookup(name); ok {
					b.WriteString(val)
					s = s[i+2+end+1:]
					continue
				}
			}
		}
		b.WriteString("${")
		s = s[i+2:]
	}
}

// validVarName says whether name is an environment variable name a value
// may refer to: a letter or underscore, then letters, digits, underscores.
func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
