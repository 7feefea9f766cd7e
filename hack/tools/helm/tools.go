//go:build tools

// Package tools pins the helm CLI that hack/lib/kube.sh builds, so that
// go.mod/go.sum record its exact version and dependencies.
// Build it with: go build helm.sh/helm/v3/cmd/helm (see hack/lib/kube.sh).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
