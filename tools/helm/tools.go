//go:build tools

// Package tools pins the one main package this module builds: the helm CLI.
// The module exists so the chart's tests run a helm of a known version, built
// from the Go module proxy like the control plane, without downloading a
// release binary.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
