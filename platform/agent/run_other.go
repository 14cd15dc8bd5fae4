//go:build !linux

package agent

import (
	"context"
	"errors"
)

// Run fails: the node agent runs pods as Linux processes.
func Run(ctx context.Context, o Options) error {
	return errors.New("fn's node agent runs on Linux only")
}
