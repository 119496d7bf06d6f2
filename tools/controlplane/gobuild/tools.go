//go:build tools

// Package tools pins the main packages this module builds: kube-apiserver and
// etcd. The module exists only so `go build` can resolve k8s.io/kubernetes,
// whose staging modules are required at v0.0.0 and must be replaced here.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
