// Package unready is a test function whose Ready hook never passes.
package unready

import (
	"context"
	"errors"
	"net/http"
)

type F struct{}

func New() *F { return &F{} }

func (*F) Ready(ctx context.Context) (bool, error) {
	return false, errors.New("the cache is still warming")
}

func (*F) Handle(w http.ResponseWriter, r *http.Request) {}
