package api

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

// ownDecoder are request bodies not decoded with httpx.DecodeJSON: the
// state backend reads the LOCK body as OpenTofu sends it and checks its ID.
var ownDecoder = map[string]bool{"Lock": true}

type jsonField struct {
	typ       reflect.Type
	omitempty bool
	required  bool // tagged required:"true": httpx.DecodeJSON refuses bodies without it
}

// jsonFields returns the JSON object fields encoding/json uses for t.
func jsonFields(t reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = jsonField{f.Type, slices.Contains(strings.Split(opts, ","), "omitempty"), f.Tag.Get("required") == "true"}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func stringSet(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// checkType checks that schema s describes values of Go type typ.
func checkType(t *testing.T, doc map[string]any, where string, s map[string]any, typ reflect.Type) {
	t.Helper()
	if all, ok := s["allOf"].([]any); ok && len(all) == 1 {
		s = obj(all[0])
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	ref, _ := s["$ref"].(string)
	switch {
	case typ == reflect.TypeFor[time.Time]():
		if s["type"] != "string" || s["format"] != "date-time" {
			t.Errorf("%s: a time is a string with format date-time", where)
		}
		return
	case typ.Kind() == reflect.Struct:
		if ref != schemaRef+typ.Name() {
			t.Errorf("%s: want $ref %s%s, got %q", where, schemaRef, typ.Name(), ref)
		}
		return
	case typ.Kind() == reflect.Interface || typ == reflect.TypeFor[json.RawMessage]():
		if ref != "" || s["type"] != nil {
			t.Errorf("%s: holds any JSON value, so it must not have a type", where)
		}
		return
	}
	if ref != "" {
		s = deref(t, doc, s)
	}
	var want string
	switch typ.Kind() {
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "integer"
		if typ.Kind() == reflect.Int64 && s["format"] != "int64" {
			t.Errorf("%s: an int64 has format int64", where)
		}
	case reflect.Float32, reflect.Float64:
		want = "number"
	case reflect.Slice, reflect.Array:
		want = "array"
		if items := obj(s["items"]); items != nil {
			checkType(t, doc, where+"[]", items, typ.Elem())
		} else {
			t.Errorf("%s: an array needs items", where)
		}
	case reflect.Map:
		want = "object"
	default:
		t.Errorf("%s: the test does not know Go kind %s", where, typ.Kind())
		return
	}
	if s["type"] != want {
		t.Errorf("%s: type %v, want %s for Go %s", where, s["type"], want, typ)
	}
}

// checkFields compares the properties of schema s with JSON fields.
func checkFields(t *testing.T, doc map[string]any, name string, s map[string]any, fields map[string]jsonField) {
	t.Helper()
	props := obj(s["properties"])
	if got, want := keys(props), keys(fields); !slices.Equal(got, want) {
		t.Errorf("schema %s has properties %v, the Go type has JSON fields %v", name, got, want)
	}
	for f, jf := range fields {
		if p := obj(props[f]); p != nil {
			checkType(t, doc, name+"."+f, p, jf.typ)
		}
	}
	required := stringSet(s["required"])
	for _, r := range required {
		if _, ok := fields[r]; !ok {
			t.Errorf("schema %s requires %q, which is no field", name, r)
		}
	}
	// What a request body requires, httpx.DecodeJSON enforces: the fields
	// tagged required:"true" (never omitempty, or the client could not send
	// their zero value). Responses tag nothing.
	var tagged []string
	for f, jf := range fields {
		if jf.required {
			tagged = append(tagged, f)
			if jf.omitempty {
				t.Errorf("schema %s: required field %q is omitempty in Go, so its zero value is never sent", name, f)
			}
		}
	}
	sort.Strings(tagged)
	if requestOnly[name] && !ownDecoder[name] && !slices.Equal(required, tagged) {
		t.Errorf("schema %s requires %v, but the Go fields tagged required:\"true\" are %v (httpx.DecodeJSON enforces the tags)", name, required, tagged)
	}
	if !requestOnly[name] && len(tagged) > 0 {
		t.Errorf("schema %s is no request body, but tags %v required", name, tagged)
	}
	if !requestOnly[name] {
		// Responses always carry the fields without omitempty, and only those.
		var always []string
		for f, jf := range fields {
			if !jf.omitempty {
				always = append(always, f)
			}
		}
		sort.Strings(always)
		if !slices.Equal(required, always) {
			t.Errorf("schema %s requires %v, but the fields always present are %v", name, required, always)
		}
	}
}

func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	schemas := obj(obj(doc["components"])["schemas"])
	for name := range schemas {
		_, isGo := goSchemas[name]
		if _, other := otherSchemas[name]; isGo == other {
			t.Errorf("schema %s must be in exactly one of goSchemas and otherSchemas", name)
		}
	}
	for name, typ := range goSchemas {
		s := obj(schemas[name])
		if s == nil {
			t.Errorf("no schema %s for %s", name, typ)
			continue
		}
		if s["type"] != "object" {
			t.Errorf("schema %s: type %v, want object", name, s["type"])
		}
		checkFields(t, doc, name, s, jsonFields(typ))
	}
	for name := range otherSchemas {
		if schemas[name] == nil {
			t.Errorf("no schema %s", name)
		}
	}
	for _, name := range strictBodies {
		if ap, ok := obj(schemas[name])["additionalProperties"]; !ok || ap != false {
			t.Errorf("schema %s: the server refuses unknown fields, so additionalProperties must be false", name)
		}
	}

	// Every struct of apiv1 has its schema.
	structs, _ := apiv1Source(t)
	for _, name := range structs {
		if name == "List" {
			continue // generic: the *List schemas
		}
		if _, ok := goSchemas[name]; !ok {
			t.Errorf("apiv1.%s has no schema in openapi.json (add it and to goSchemas)", name)
		}
	}

	// The body of LOCK/UNLOCK is read as state.LockInfo; a 423 of the state
	// backend is the holder's LockInfo plus the error envelope.
	checkFields(t, doc, "Lock", obj(schemas["Lock"]), jsonFields(reflect.TypeFor[state.LockInfo]()))
	conflict := map[string]jsonField{}
	for _, typ := range []reflect.Type{reflect.TypeFor[state.LockInfo](), reflect.TypeFor[apiv1.ErrorBody]()} {
		for k, v := range jsonFields(typ) {
			conflict[k] = v
		}
	}
	var union []string
	parts, _ := obj(schemas["LockConflict"])["allOf"].([]any)
	for _, part := range parts {
		union = append(union, keys(obj(deref(t, doc, part)["properties"]))...)
	}
	sort.Strings(union)
	if want := keys(conflict); !slices.Equal(union, want) {
		t.Errorf("LockConflict has properties %v, lockAware writes %v", union, want)
	}
}

func TestOpenAPIEnums(t *testing.T) {
	schemas := obj(obj(loadOpenAPI(t)["components"])["schemas"])
	_, consts := apiv1Source(t)
	enum := func(s map[string]any) []string { return stringSet(s["enum"]) }
	var runTypes, runStates []string
	for name, v := range consts {
		switch {
		case strings.HasPrefix(name, "Run"):
			runTypes = append(runTypes, v)
		case strings.HasPrefix(name, "State"):
			runStates = append(runStates, v)
		}
	}
	sort.Strings(runTypes)
	sort.Strings(runStates)
	if got := enum(obj(schemas["RunType"])); len(runTypes) == 0 || !slices.Equal(got, runTypes) {
		t.Errorf("RunType enum %v, apiv1 run types %v", got, runTypes)
	}
	if got := enum(obj(schemas["RunState"])); len(runStates) == 0 || !slices.Equal(got, runStates) {
		t.Errorf("RunState enum %v, apiv1 run states %v", got, runStates)
	}
	// The run package refuses list filters outside these.
	if got := stringSet(toAny(run.States)); !slices.Equal(got, runStates) {
		t.Errorf("run.States %v, apiv1 run states %v", got, runStates)
	}
	if got := stringSet(toAny(run.Types)); !slices.Equal(got, runTypes) {
		t.Errorf("run.Types %v, apiv1 run types %v", got, runTypes)
	}
	stackStates := append(slices.Clone(runStates), "NONE")
	sort.Strings(stackStates)
	if got := enum(obj(obj(obj(schemas["Stack"])["properties"])["state"])); !slices.Equal(got, stackStates) {
		t.Errorf("Stack.state enum %v, want the run states and NONE %v", got, stackStates)
	}
	tools := []string{stack.OpenTofu, stack.Terraform}
	sort.Strings(tools)
	if got := enum(obj(schemas["Tool"])); !slices.Equal(got, tools) {
		t.Errorf("Tool enum %v, want %v", got, tools)
	}
	var kinds []string
	for k := range httpx.Status {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	if got := enum(obj(obj(obj(schemas["ErrorDetail"])["properties"])["code"])); !slices.Equal(got, kinds) {
		t.Errorf("ErrorDetail.code enum %v, httpx.Status has kinds %v", got, kinds)
	}
}

func toAny(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// apiv1Source returns the exported struct types of package apiv1 and its
// exported string constants by name.
func apiv1Source(t *testing.T) (structs []string, consts map[string]string) {
	t.Helper()
	names, err := filepath.Glob("../apiv1/*.go")
	if err != nil || len(names) == 0 {
		t.Fatalf("apiv1 sources: %v", err)
	}
	consts = map[string]string{}
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if _, ok := s.Type.(*ast.StructType); ok && s.Name.IsExported() {
						structs = append(structs, s.Name.Name)
					}
				case *ast.ValueSpec:
					if gd.Tok != token.CONST {
						continue
					}
					for i, n := range s.Names {
						if i < len(s.Values) && n.IsExported() {
							if v, ok := stringLit(s.Values[i]); ok {
								consts[n.Name] = v
							}
						}
					}
				}
			}
		}
	}
	return structs, consts
}
