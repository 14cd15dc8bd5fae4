// Package crash is a test function whose Start fails: its process logs why and exits.
package crash

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
)

type F struct{}

func New() *F { return &F{} }

func (*F) Start(ctx context.Context, cfg map[string]string) error {
	fmt.Fprintln(os.Stderr, "connecting to the orders database: connection refused")
	return errors.New("no database")
}

func (*F) Handle(w http.ResponseWriter, r *http.Request) {}
