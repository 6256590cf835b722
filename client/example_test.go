package client_test

import (
	"context"
	"fmt"
	"log"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/client"
)

// A service submits a task and reads it back. Submitting again with the
// same ref and data is safe: it returns the same task.
func Example() {
	c := client.New("http://127.0.0.1:8080", "my-token", nil)
	ctx := context.Background()
	task, created, err := c.Submit(ctx, "liqpay-hold", "order-42", map[string]any{
		"phone": "380950000001", "amount": "5.50", "currency": "UAH", "description": "order 42",
		"order_id": "order-42", "card": "4242424242424242", "card_exp_month": "12", "card_exp_year": "29",
		"card_cvv": "123", "ip": "203.0.113.7",
	})
	switch conveyor.ErrorCode(err) {
	case "":
	case conveyor.EConflict:
		log.Fatal("order-42 was submitted before with other data")
	default:
		log.Fatal(err)
	}
	fmt.Println(task.ID, created, task.Status)
}
