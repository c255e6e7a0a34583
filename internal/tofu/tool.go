// Package tofu finds or downloads OpenTofu and Terraform binaries, runs them,
// and reads what they produce (`show -json` plans, state files).
package tofu

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Tool is an infrastructure-as-code engine Gantry can drive.
type Tool string

const (
	OpenTofu  Tool = "opentofu"
	Terraform Tool = "terraform"
)

// Valid reports whether t is a tool this package knows.
func (t Tool) Valid() bool { return t == OpenTofu || t == Terraform }

// Binary is the executable's name: "tofu" or "terraform".
func (t Tool) Binary() string {
	switch t {
	case OpenTofu:
		return "tofu"
	case Terraform:
		return "terraform"
	}
	return ""
}

// DisplayName is the product name for humans: "OpenTofu" or "Terraform".
func (t Tool) DisplayName() string {
	switch t {
	case OpenTofu:
		return "OpenTofu"
	case Terraform:
		return "Terraform"
	}
	return string(t)
}

func checkTool(t Tool) error {
	if !t.Valid() {
		return errs.E(errs.Invalid, "unknown tool %q (want %q or %q)", string(t), OpenTofu, Terraform)
	}
	return nil
}

// versionRE is a semantic version without build metadata: MAJOR.MINOR.PATCH
// without leading zeros, and an optional -PRERELEASE of dot-separated
// identifiers (numeric ones without leading zeros).
var versionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?$`)

// ValidVersion reports whether v is a release version ("1.10.7",
// "1.11.0-beta1"). Only such strings are used in paths and URLs.
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

func checkVersion(t Tool, v string) error {
	if !ValidVersion(v) {
		return errs.E(errs.Invalid, "invalid %s version %q (want MAJOR.MINOR.PATCH, e.g. 1.10.7)", t, v)
	}
	return nil
}

// compareVersions orders two valid versions the semver way: numeric core
// first, then a release sorts after its prereleases, then prerelease
// identifiers one by one (numeric ones numerically).
func compareVersions(a, b string) int {
	acore, apre, _ := strings.Cut(a, "-")
	bcore, bpre, _ := strings.Cut(b, "-")
	if c := compareDotted(acore, bcore); c != 0 {
		return c
	}
	switch {
	case apre == bpre:
		return 0
	case apre == "":
		return 1
	case bpre == "":
		return -1
	}
	return compareDotted(apre, bpre)
}

func compareDotted(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if c := compareIdent(as[i], bs[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(as), len(bs))
}

func compareIdent(a, b string) int {
	an, aerr := strconv.ParseUint(a, 10, 64)
	bn, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		return cmp.Compare(an, bn)
	case aerr == nil:
		return -1 // numeric identifiers sort before alphanumeric ones
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

func toolVersionString(t Tool, v string) string { return fmt.Sprintf("%s %s", t.DisplayName(), v) }
