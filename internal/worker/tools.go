package worker

import (
	"context"
	"encoding/json"
	"os/exec"
	"runtime"
	"sync"
	"time"
)

var (
	toolsOnce sync.Once
	tools     map[string]string
)

// DetectTools reports the tools a worker has on PATH and their versions
// (`tofu`, `terraform`, `git`), and its platform. It runs the tools once per
// process; a tool that is missing or does not answer within 10 seconds is
// left out (the worker downloads tool versions as runs need them).
func DetectTools(ctx context.Context) map[string]string {
	toolsOnce.Do(func() {
		tools = map[string]string{"platform": runtime.GOOS + "_" + runtime.GOARCH}
		for _, name := range []string{"tofu", "terraform"} {
			if v := toolVersion(ctx, name, "version", "-json"); v != "" {
				tools[name] = v
			}
		}
		if path, err := exec.LookPath("git"); err == nil && path != "" {
			tools["git"] = "present"
		}
	})
	out := make(map[string]string, len(tools))
	for k, v := range tools {
		out[k] = v
	}
	return out
}

func toolVersion(ctx context.Context, name string, args ...string) string {
	path, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		return ""
	}
	var v struct {
		Version         string `json:"terraform_version"`
		OpenTofuVersion string `json:"opentofu_version"`
	}
	if json.Unmarshal(out, &v) != nil {
		return ""
	}
	if v.OpenTofuVersion != "" {
		return v.OpenTofuVersion
	}
	return v.Version
}
