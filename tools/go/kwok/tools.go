//go:build tools

// Package tools names the command scripts/k8s-tools.sh builds, so go mod tidy keeps its
// dependencies.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
