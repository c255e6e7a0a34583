package cli

import (
	"fmt"
	"runtime"

	"github.com/gantry-iac/gantry/internal/release"
	"github.com/spf13/cobra"
)

// version is the release of the binary, short (no spaces): for the
// User-Agent. See package release.
func version() string { return release.Get().Version }

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of gantry",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			info := release.Get()
			if a.output == "json" {
				out := map[string]any{
					"version": info.Version, "go": runtime.Version(),
					"platform": runtime.GOOS + "/" + runtime.GOARCH,
				}
				if info.Revision != "" {
					out["revision"], out["modified"] = info.Revision, info.Modified
				}
				if info.Time != "" {
					out["time"] = info.Time
				}
				return a.printJSON(out)
			}
			_, err := fmt.Fprintf(a.stdout, "gantry %s (%s, %s/%s)\n", info, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
