// Package typed is an example typed JSON function that totals an order.
package typed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
)

// Order is the request body: the items being bought.
type Order struct {
	Items []Item `json:"items"`
}

// Item is one line of an order.
type Item struct {
	Name     string  `json:"name"`
	Price    float64 `json:"price"`
	Quantity int     `json:"quantity"`
}

// Receipt is the response body: the order's total, rounded to cents, and its number of items.
type Receipt struct {
	Total     float64 `json:"total"`
	ItemCount int     `json:"itemCount"`
}

// Handle totals o; an order without items, or with an invalid item, answers 422.
func Handle(ctx context.Context, o Order) (Receipt, error) {
	if len(o.Items) == 0 {
		return Receipt{}, unprocessable(errors.New("the order has no items"))
	}
	var r Receipt
	for i, it := range o.Items {
		if it.Quantity <= 0 {
			return Receipt{}, unprocessable(fmt.Errorf("item %d (%q) has quantity %d: want 1 or more", i, it.Name, it.Quantity))
		}
		if it.Price < 0 {
			return Receipt{}, unprocessable(fmt.Errorf("item %d (%q) has negative price %v", i, it.Name, it.Price))
		}
		r.Total += it.Price * float64(it.Quantity)
		r.ItemCount += it.Quantity
	}
	r.Total = math.Round(r.Total*100) / 100
	return r, nil
}

// statusError is an error that fn answers with its status code.
type statusError struct {
	code int
	err  error
}

// unprocessable wraps err so that fn answers 422 Unprocessable Entity.
func unprocessable(err error) error {
	return &statusError{code: http.StatusUnprocessableEntity, err: err}
}

func (e *statusError) Error() string   { return e.err.Error() }
func (e *statusError) Unwrap() error   { return e.err }
func (e *statusError) StatusCode() int { return e.code }
