// amqp091check drives an AMQP 0-9-1 broker with amqp091-go, the client Go
// daemons use, one scenario per run, and fails (exit 1, the reason on
// stderr) when the broker does not do what RabbitMQ does. Integration test
// 53-amqp091-go.py builds it offline from Debian's package and runs each
// scenario against the real broker.
//
//	amqp091check -url amqp://guest:guest@127.0.0.1:5672/ -scenario confirms
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var url = flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "broker URL")

// failf ends the scenario: the reason on stderr, exit status 1.
func failf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func check(err error, what string) {
	if err != nil {
		failf("%s: %v", what, err)
	}
}

// name is a queue or exchange name no other run uses (the broker may be shared).
func name(prefix string) string {
	return fmt.Sprintf("go-%s-%08x", prefix, rand.Uint32())
}

func dial() *amqp.Connection {
	c, err := amqp.Dial(*url)
	check(err, "dial")
	return c
}

func channel(c *amqp.Connection) *amqp.Channel {
	ch, err := c.Channel()
	check(err, "channel")
	return ch
}

// tempQueue declares a queue that goes when its connection does.
func tempQueue(ch *amqp.Channel, prefix string) string {
	q, err := ch.QueueDeclare(name(prefix), false, false, true, false, nil)
	check(err, "queue.declare "+prefix)
	return q.Name
}

func receive(d <-chan amqp.Delivery, within time.Duration, what string) amqp.Delivery {
	select {
	case m, ok := <-d:
		if !ok {
			failf("%s: the delivery channel closed", what)
		}
		return m
	case <-time.After(within):
		failf("%s: nothing within %v", what, within)
	}
	panic("unreachable")
}

// amqpCode is the reply code of a broker's channel or connection error.
func amqpCode(err error) int {
	var e *amqp.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

// declare: exchanges of each kind, a durable queue, bindings, routing by
// topic; a passive declare of a durable queue counts its messages.
func declare() {
	c := dial()
	defer c.Close()
	ch := channel(c)
	check(ch.Confirm(false), "confirm.select")
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 16))
	for _, kind := range []string{"direct", "fanout", "topic", "headers"} {
		x := name(kind)
		check(ch.ExchangeDeclare(x, kind, false, true, false, false, nil), "exchange.declare "+kind)
		check(ch.ExchangeDelete(x, false, false), "exchange.delete "+kind)
	}
	x := name("orders")
	check(ch.ExchangeDeclare(x, "topic", false, true, false, false, nil), "exchange.declare")
	defer ch.ExchangeDelete(x, false, false)
	q, err := ch.QueueDeclare(name("durable"), true, false, false, false, amqp.Table{"x-max-length": int32(100)})
	check(err, "queue.declare durable")
	defer ch.QueueDelete(q.Name, false, false, false)
	check(ch.QueueBind(q.Name, "order.*.eu", x, false, nil), "queue.bind")
	for _, key := range []string{"order.new.eu", "order.new.us", "order.paid.eu", "refund.new.eu"} {
		check(ch.Publish(x, key, false, false, amqp.Publishing{Body: []byte(key)}), "publish")
		if c := <-confirms; !c.Ack {
			failf("publish %s nacked", key)
		}
	}
	p, err := ch.QueueDeclarePassive(q.Name, true, false, false, false, amqp.Table{"x-max-length": int32(100)})
	check(err, "queue.declare passive")
	if p.Messages != 2 {
		failf("the topic exchange routed %d messages to order.*.eu, want 2", p.Messages)
	}
	for _, want := range []string{"order.new.eu", "order.paid.eu"} {
		m, ok, err := ch.Get(q.Name, true)
		check(err, "basic.get")
		if !ok || string(m.Body) != want || m.RoutingKey != want || m.Exchange != x {
			failf("get: %v %q (key %q, exchange %q), want %q", ok, m.Body, m.RoutingKey, m.Exchange, want)
		}
	}
	if _, ok, _ := ch.Get(q.Name, true); ok {
		failf("a third message in the queue")
	}
}

// confirms: every publish acked once, in sequence; a full reject-publish
// queue nacks; mandatory and unroutable is returned before its ack.
func confirms() {
	c := dial()
	defer c.Close()
	ch := channel(c)
	check(ch.Confirm(false), "confirm.select")
	q := tempQueue(ch, "confirms")
	acks := ch.NotifyPublish(make(chan amqp.Confirmation, 100))
	for i := 0; i < 50; i++ {
		body, _ := json.Marshal(map[string]int{"i": i})
		check(ch.Publish("", q, false, false, amqp.Publishing{ContentType: "application/json",
			DeliveryMode: amqp.Persistent, Body: body}), "publish")
	}
	for i := uint64(1); i <= 50; i++ {
		select {
		case cf := <-acks:
			if !cf.Ack || cf.DeliveryTag != i {
				failf("confirmation %d: %+v", i, cf)
			}
		case <-time.After(5 * time.Second):
			failf("confirmation %d not received", i)
		}
	}
	full := name("full")
	_, err := ch.QueueDeclare(full, false, false, true, false,
		amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	check(err, "queue.declare reject-publish")
	// (NotifyPublish, not PublishWithDeferredConfirm: in amqp091-go 1.5.0 a
	// confirm that comes back before the latter has registered it is lost.)
	for i, want := range []bool{true, false} {
		check(ch.Publish("", full, false, false, amqp.Publishing{Body: []byte("x")}), "publish to the full queue")
		select {
		case cf := <-acks:
			if cf.Ack != want || cf.DeliveryTag != uint64(51+i) {
				failf("publish %d to a queue of max length 1: %+v, want ack %v", i, cf, want)
			}
		case <-time.After(5 * time.Second):
			failf("publish %d to the full queue: no confirmation", i)
		}
	}
}

// prefetch: with Qos(3) no more than 3 unacked deliveries arrive; acking
// releases more; all 12 come once, in order, none redelivered.
func prefetch() {
	c := dial()
	defer c.Close()
	ch := channel(c)
	q := tempQueue(ch, "prefetch")
	check(ch.Confirm(false), "confirm.select")
	acks := ch.NotifyPublish(make(chan amqp.Confirmation, 12))
	for i := 0; i < 12; i++ {
		check(ch.Publish("", q, false, false, amqp.Publishing{Body: []byte(fmt.Sprint(i))}), "publish")
	}
	for i := 0; i < 12; i++ {
		select {
		case cf := <-acks:
			if !cf.Ack {
				failf("publish %d nacked", cf.DeliveryTag)
			}
		case <-time.After(5 * time.Second):
			failf("%d of 12 publishes confirmed", i)
		}
	}
	check(ch.Qos(3, 0, false), "basic.qos")
	d, err := ch.Consume(q, "", false, false, false, false, nil)
	check(err, "basic.consume")
	next := 0
	for round := 0; round < 4; round++ {
		var last amqp.Delivery
		for k := 0; k < 3; k++ {
			last = receive(d, 3*time.Second, "prefetch delivery")
			if string(last.Body) != fmt.Sprint(next) || last.Redelivered {
				failf("delivery %q (redelivered %v), want %d", last.Body, last.Redelivered, next)
			}
			next++
		}
		select {
		case m := <-d:
			failf("a 4th unacked delivery (%q) with prefetch 3", m.Body)
		case <-time.After(300 * time.Millisecond):
		}
		check(last.Ack(true), "basic.ack multiple")
	}
}

// rpc: a server goroutine on its own connection doubles numbers; the
// client asks over an exclusive server-named queue, then over direct
// reply-to.
func rpc() {
	server, client := dial(), dial()
	defer server.Close()
	defer client.Close()
	sch := channel(server)
	rq := tempQueue(sch, "rpc")
	reqs, err := sch.Consume(rq, "", false, false, false, false, nil)
	check(err, "server consume")
	go func() {
		for m := range reqs {
			var in struct{ N int }
			if json.Unmarshal(m.Body, &in) != nil {
				m.Reject(false)
				continue
			}
			out, _ := json.Marshal(map[string]interface{}{"n2": in.N * 2, "reply_to": m.ReplyTo})
			sch.Publish("", m.ReplyTo, false, false, amqp.Publishing{ContentType: "application/json",
				CorrelationId: m.CorrelationId, Body: out})
			m.Ack(false)
		}
	}()

	ch := channel(client)
	own, err := ch.QueueDeclare("", false, true, true, false, nil)
	check(err, "server-named exclusive queue")
	for _, replyTo := range []string{own.Name, "amq.rabbitmq.reply-to"} {
		replies, err := ch.Consume(replyTo, "", true, false, false, false, nil)
		check(err, "consume "+replyTo)
		for n := 1; n <= 3; n++ {
			corr := fmt.Sprintf("%s-%d", replyTo, n)
			body, _ := json.Marshal(map[string]int{"n": n})
			check(ch.Publish("", rq, false, false, amqp.Publishing{ContentType: "application/json",
				ReplyTo: replyTo, CorrelationId: corr, Body: body}), "publish request")
			m := receive(replies, 5*time.Second, "reply via "+replyTo)
			var out struct {
				N2      int    `json:"n2"`
				ReplyTo string `json:"reply_to"`
			}
			check(json.Unmarshal(m.Body, &out), "reply body")
			if m.CorrelationId != corr || out.N2 != 2*n {
				failf("reply %q (correlation %q), want n2=%d for %q", m.Body, m.CorrelationId, 2*n, corr)
			}
			if replyTo == own.Name && out.ReplyTo != own.Name {
				failf("the server saw reply_to %q, want %q", out.ReplyTo, own.Name)
			}
			if replyTo != own.Name && (len(out.ReplyTo) <= len(replyTo) || out.ReplyTo[:len(replyTo)+1] != replyTo+".") {
				failf("direct reply-to: the server saw reply_to %q", out.ReplyTo)
			}
		}
	}
}

// recovery: channel errors close the channel (NotifyClose says why) and
// leave the connection and its other channels working.
func recovery() {
	c := dial()
	defer c.Close()
	other := channel(c)
	q := tempQueue(other, "recovery")
	cases := []struct {
		code  int
		what  string
		async bool // the error arrives after the call returned: only NotifyClose tells
		do    func(ch *amqp.Channel) error
	}{
		{404, "passive declare of a missing queue", false, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(name("missing"), false, false, false, false, nil)
			return err
		}},
		{406, "redeclare with other properties", false, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(q, false, false, true, false, amqp.Table{"x-max-length": int32(5)})
			return err
		}},
		{404, "bind to a missing exchange", false, func(ch *amqp.Channel) error {
			return ch.QueueBind(q, "k", name("nox"), false, nil)
		}},
		{406, "ack of an unknown delivery tag", true, func(ch *amqp.Channel) error {
			return ch.Ack(99, false)
		}},
	}
	for _, tc := range cases {
		ch := channel(c)
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		err := tc.do(ch)
		if !tc.async && amqpCode(err) != tc.code {
			failf("%s: error %v, want code %d", tc.what, err, tc.code)
		}
		select {
		case e := <-closed:
			if e == nil || e.Code != tc.code || e.Server != true {
				failf("%s: NotifyClose got %+v", tc.what, e)
			}
		case <-time.After(3 * time.Second):
			failf("%s: the channel did not report its close", tc.what)
		}
		if c.IsClosed() {
			failf("%s closed the connection", tc.what)
		}
	}
	// Another exclusive owner: 405 from a second connection.
	c2 := dial()
	defer c2.Close()
	own := channel(c)
	ex, err := own.QueueDeclare("", false, true, true, false, nil)
	check(err, "exclusive queue")
	_, err = channel(c2).Consume(ex.Name, "", true, false, false, false, nil)
	if amqpCode(err) != 405 {
		failf("consuming another connection's exclusive queue: %v, want 405", err)
	}
	// Everything still works.
	ch := channel(c)
	check(ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("after")}), "publish after errors")
	check(other.Publish("", q, false, false, amqp.Publishing{Body: []byte("other")}), "publish on the first channel")
	for _, want := range []string{"after", "other"} {
		var m amqp.Delivery
		ok := false
		for t := 0; t < 50 && !ok; t++ {
			m, ok, err = ch.Get(q, true)
			check(err, "get after errors")
			if !ok {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if !ok || string(m.Body) != want {
			failf("after the errors: %v %q, want %q", ok, m.Body, want)
		}
	}
}

// returns: a mandatory publish with no route comes back on NotifyReturn
// with 312 NO_ROUTE; a routed one and a non-mandatory one do not.
func returns() {
	c := dial()
	defer c.Close()
	ch := channel(c)
	back := ch.NotifyReturn(make(chan amqp.Return, 4))
	x := name("ret")
	check(ch.ExchangeDeclare(x, "direct", false, true, false, false, nil), "exchange.declare")
	defer ch.ExchangeDelete(x, false, false)
	q := tempQueue(ch, "ret")
	check(ch.QueueBind(q, "routed", x, false, nil), "bind")
	check(ch.Publish(x, "routed", true, false, amqp.Publishing{Body: []byte("kept")}), "publish routed")
	check(ch.Publish(x, "nowhere", false, false, amqp.Publishing{Body: []byte("dropped")}), "publish plain")
	check(ch.Publish(x, "nowhere", true, false, amqp.Publishing{MessageId: "m-1", Body: []byte("bounced")}),
		"publish mandatory")
	select {
	case r := <-back:
		if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.Exchange != x || r.RoutingKey != "nowhere" ||
			string(r.Body) != "bounced" || r.MessageId != "m-1" {
			failf("return %d %q %q %q %q %q", r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey, r.Body, r.MessageId)
		}
	case <-time.After(3 * time.Second):
		failf("no Basic.Return for a mandatory unroutable publish")
	}
	select {
	case r := <-back:
		failf("a second return: %q", r.Body)
	case <-time.After(300 * time.Millisecond):
	}
	m, ok, err := ch.Get(q, true)
	check(err, "get")
	if !ok || string(m.Body) != "kept" {
		failf("the routed message: %v %q", ok, m.Body)
	}
}

func main() {
	scenario := flag.String("scenario", "", "declare, confirms, prefetch, rpc, recovery or returns")
	flag.Parse()
	rand.Seed(time.Now().UnixNano())
	run := map[string]func(){"declare": declare, "confirms": confirms, "prefetch": prefetch, "rpc": rpc,
		"recovery": recovery, "returns": returns}[*scenario]
	if run == nil {
		fmt.Fprintf(os.Stderr, "amqp091check: unknown -scenario %q\n", *scenario)
		os.Exit(2)
	}
	run()
	fmt.Println("ok", *scenario)
}
