// Package examples embeds the example configurations users can run, so that
// `gantry server --demo` can push the demo stack into a local repository.
package examples

import "embed"

// Demo holds the demo stack's configuration (directory "demo").
//
//go:embed demo
var Demo embed.FS
