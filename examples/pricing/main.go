// pricing is the shop's pricing service: it answers price requests on its
// own queue, "pricing", request/reply style — the reply goes to the
// request's reply_to with its correlation_id — in JSON. It knows nothing of
// orders' lives; the worker asks it.
//
//	AMQP_URL=amqp://guest:guest@localhost:5672/ ./pricing
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	amqp "github.com/rabbitmq/amqp091-go"
)

// prices in cents, by SKU.
var prices = map[string]int{
	"tea":    450,
	"coffee": 390,
	"cake":   525,
	"bagel":  275,
}

type request struct {
	Order int `json:"order"`
	Items []struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	} `json:"items"`
}

type reply struct {
	Order      int    `json:"order"`
	TotalCents int    `json:"total_cents,omitempty"`
	Currency   string `json:"currency,omitempty"`
	Error      string `json:"error,omitempty"`
}

func price(req request) reply {
	r := reply{Order: req.Order, Currency: "EUR"}
	for _, it := range req.Items {
		p, ok := prices[it.SKU]
		if !ok || it.Qty <= 0 {
			return reply{Order: req.Order, Error: fmt.Sprintf("cannot price %d x %q", it.Qty, it.SKU)}
		}
		r.TotalCents += p * it.Qty
	}
	return r
}

func main() {
	log.SetFlags(0)
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@localhost:5672/"
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		log.Fatalf("pricing: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		log.Fatalf("pricing: %v", err)
	}
	if _, err := ch.QueueDeclare("pricing", true, false, false, false, nil); err != nil {
		log.Fatalf("pricing: declare: %v", err)
	}
	if err := ch.Qos(10, 0, false); err != nil {
		log.Fatalf("pricing: qos: %v", err)
	}
	requests, err := ch.Consume("pricing", "pricing", false, false, false, false, nil)
	if err != nil {
		log.Fatalf("pricing: consume: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Println("pricing: ready")

	for {
		select {
		case <-ctx.Done():
			fmt.Println("pricing: stopping")
			return
		case d, ok := <-requests:
			if !ok {
				log.Fatalf("pricing: the broker closed the channel: %v", conn.IsClosed())
			}
			var req request
			if err := json.Unmarshal(d.Body, &req); err != nil || d.ReplyTo == "" {
				fmt.Printf("pricing: dropping a malformed request (%q)\n", d.Body)
				d.Reject(false)
				continue
			}
			r := price(req)
			body, _ := json.Marshal(r)
			err := ch.PublishWithContext(ctx, "", d.ReplyTo, false, false, amqp.Publishing{
				ContentType: "application/json", CorrelationId: d.CorrelationId, Body: body})
			if err != nil {
				log.Fatalf("pricing: reply: %v", err)
			}
			d.Ack(false)
			if r.Error != "" {
				fmt.Printf("pricing: order %d: %s\n", r.Order, r.Error)
			} else {
				fmt.Printf("pricing: order %d priced %d.%02d %s\n", r.Order, r.TotalCents/100, r.TotalCents%100, r.Currency)
			}
		}
	}
}
