//go:build tools

// Package tools pins the Kubernetes binaries that hack/lib/kube.sh builds
// (kube-apiserver and kubectl) so that go.mod/go.sum record exact versions.
// Build them with: go build k8s.io/kubernetes/cmd/kube-apiserver (see hack/lib/kube.sh).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
