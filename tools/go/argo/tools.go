//go:build tools

// Package tools names the command scripts/k8s-tools.sh builds, so go mod tidy keeps its
// dependencies.
package tools

import _ "github.com/argoproj/argo-workflows/v4/cmd/workflow-controller"
