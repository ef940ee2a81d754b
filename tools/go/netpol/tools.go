//go:build tools

// Package tools names the command scripts/k8s-tools.sh builds (k8snetpolicy), so go mod
// tidy keeps its dependencies.
package tools

import _ "github.com/np-guard/netpol-analyzer/cmd/netpolicy"
