//go:build tools

// Package tools pins the two main packages this module builds: the Pebble ACME
// test CA and its companion challenge test server. The ACME issuer's
// integration tests run them on loopback, built from the Go module proxy like
// the control plane, without downloading a release binary.
package tools

import (
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble"
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv"
)
