// Command interop runs Warren's interop scenarios with amqp091-go (the Go
// client RabbitMQ maintains).
//
// Usage: interop [SCENARIO ...]
//
// The broker is the one in INTEROP_AMQP_URL (only 127.0.0.1/localhost/::1 are
// accepted). A scenario marked pending runs only when
// WARREN_INTEROP_PENDING=1 (or when named on the command line).
//
// Output, one line per scenario: `ok <name> (<secs>s)`, `FAIL <name>: <why>`
// or `pending <name>`; exit status 0 when every scenario that ran passed.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const scenarioTimeout = 60 * time.Second

// pendingTimeout bounds f and g, which take about a second on RabbitMQ: fail
// fast where they are not supported.
const pendingTimeout = 20 * time.Second

// failure is an expectation about the broker's behaviour that did not hold.
type failure struct{ msg string }

func check(cond bool, format string, args ...interface{}) {
	if !cond {
		panic(failure{fmt.Sprintf(format, args...)})
	}
}

// must turns a client error into a scenario failure.
func must(err error, what string) {
	if err != nil {
		panic(failure{fmt.Sprintf("%s: %v", what, err)})
	}
}

type ctx struct {
	url       string
	prefix    string
	deadline  time.Time
	mu        sync.Mutex
	conns     []*amqp.Connection
	queues    []string
	exchanges []string
	errs      collector // problems seen in consumer goroutines (which must not panic)
}

func newCtx(url, scenario string) *ctx {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &ctx{
		url:      url,
		prefix:   fmt.Sprintf("interop.go.%s.%s", scenario, hex.EncodeToString(b)),
		deadline: time.Now().Add(scenarioTimeout),
	}
}

func (c *ctx) shortenDeadline(d time.Duration) {
	if t := time.Now().Add(d); t.Before(c.deadline) {
		c.deadline = t
	}
}

func (c *ctx) name(suffix string) string { return c.prefix + "." + suffix }

// connect opens a connection and returns it with its TCP socket (to kill it).
func (c *ctx) connect(label string) (*amqp.Connection, net.Conn) {
	var sock net.Conn
	dial := amqp.DefaultDial(10 * time.Second)
	conn, err := amqp.DialConfig(c.url, amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": c.prefix + "." + label},
		Dial: func(network, addr string) (net.Conn, error) {
			s, err := dial(network, addr)
			sock = s
			return s, err
		},
	})
	must(err, "connect "+label)
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	return conn, sock
}

func (c *ctx) channel(conn *amqp.Connection) *amqp.Channel {
	ch, err := conn.Channel()
	must(err, "open channel")
	return ch
}

func (c *ctx) declareQueue(ch *amqp.Channel, suffix string, durable bool, args amqp.Table) string {
	name := c.name(suffix)
	_, err := ch.QueueDeclare(name, durable, false, false, false, args)
	must(err, "declare queue "+name)
	c.queues = append(c.queues, name)
	return name
}

func (c *ctx) declareExchange(ch *amqp.Channel, suffix, kind string) string {
	return c.declareExchangeArgs(ch, suffix, kind, false, nil)
}

func (c *ctx) declareExchangeArgs(ch *amqp.Channel, suffix, kind string, durable bool, args amqp.Table) string {
	name := c.name(suffix)
	must(ch.ExchangeDeclare(name, kind, durable, false, false, false, args), "declare exchange "+name)
	c.exchanges = append(c.exchanges, name)
	return name
}

// waitFor polls until() until it holds, then sleeps extra.
func (c *ctx) waitFor(until func() bool, what string, extra time.Duration) {
	for !until() {
		c.checkErrs()
		if time.Now().After(c.deadline) {
			panic(failure{"timed out waiting for " + what})
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(extra)
	c.checkErrs()
}

func (c *ctx) checkErrs() {
	if errs := c.errs.list(); len(errs) > 0 {
		panic(failure{strings.Join(errs, "; ")})
	}
}

func (c *ctx) cleanup() {
	c.mu.Lock()
	conns := c.conns
	c.mu.Unlock()
	for _, conn := range conns {
		if !conn.IsClosed() {
			_ = conn.Close()
		}
	}
	if len(c.queues) == 0 && len(c.exchanges) == 0 {
		return
	}
	conn, err := amqp.DialConfig(c.url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return
	}
	defer conn.Close()
	for _, q := range c.queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, x := range c.exchanges {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(x, false, false)
			_ = ch.Close()
		}
	}
}

func depth(ch *amqp.Channel, q string) int {
	info, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	must(err, "passive declare "+q)
	return info.Messages
}

// confirmer publishes on a channel in confirm mode and waits for confirms.
type confirmer struct {
	ch       *amqp.Channel
	confirms chan amqp.Confirmation
	next     uint64
}

func newConfirmer(ch *amqp.Channel, capacity int) *confirmer {
	must(ch.Confirm(false), "confirm.select")
	return &confirmer{ch: ch, confirms: ch.NotifyPublish(make(chan amqp.Confirmation, capacity)), next: 1}
}

func (p *confirmer) publish(exchange, key string, mandatory bool, msg amqp.Publishing) {
	must(p.ch.Publish(exchange, key, mandatory, false, msg), "publish")
}

// wait reads n confirms (in publish order) and fails on a nack or a timeout.
func (p *confirmer) wait(n int, deadline time.Time) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for i := 0; i < n; i++ {
		select {
		case cf, ok := <-p.confirms:
			check(ok, "channel closed with %d confirms outstanding", n-i)
			check(cf.DeliveryTag == p.next, "confirm for tag %d, expected %d", cf.DeliveryTag, p.next)
			check(cf.Ack, "message %d was nacked", cf.DeliveryTag)
			p.next++
		case <-timer.C:
			panic(failure{fmt.Sprintf("timed out with %d of %d confirms outstanding", n-i, n)})
		}
	}
}

// consume starts a consumer and calls handle for each delivery in its own goroutine.
func consume(ch *amqp.Channel, q string, autoAck bool, handle func(amqp.Delivery)) {
	msgs, err := ch.Consume(q, "", autoAck, false, false, false, nil)
	must(err, "consume "+q)
	go func() {
		for d := range msgs {
			handle(d)
		}
	}()
}

// collector is a goroutine-safe list of strings.
type collector struct {
	mu    sync.Mutex
	items []string
}

func (c *collector) add(s string) {
	c.mu.Lock()
	c.items = append(c.items, s)
	c.mu.Unlock()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

func (c *collector) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.items...)
}

func sortedCopy(a []string) []string {
	b := append([]string(nil), a...)
	sort.Strings(b)
	return b
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func names(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

type scenario struct {
	name    string
	run     func(*ctx)
	pending bool
}

var scenarios = []scenario{
	{"a-work-queue", scenarioA, false},
	{"b-confirms", scenarioB, false},
	{"c-topic-groups", scenarioC, false},
	{"d-consumer-dies", scenarioD, false},
	{"e-headers", scenarioE, false},
	{"f-retry-dlx-ttl", scenarioF, false},
	{"g-rpc-reply-to", scenarioG, false},
	{"h-tls", scenarioH, false},
	{"i-retry-backoff", scenarioI, false},
	{"j-delayed-job", scenarioJ, false},
	{"k-dedup-webhook", scenarioK, false},
	{"l-stream-fanout-and-replay", scenarioL, false},
}

// needsPlugins names Warren features RabbitMQ lacks without plugins: skipped
// (not counted) unless INTEROP_PLUGINS=1, which run.sh exports when it starts
// Warren (Warren has them built in).
var needsPlugins = map[string]bool{"i-retry-backoff": true, "j-delayed-job": true, "k-dedup-webhook": true}

const pluginsSkip = "a Warren feature RabbitMQ lacks without plugins (INTEROP_PLUGINS=1 runs it)"

// runOne runs a scenario with a hard time bound; the result is "" when it passed.
func runOne(s scenario, c *ctx) (result string) {
	done := make(chan string, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				if f, ok := r.(failure); ok {
					done <- f.msg
				} else {
					done <- fmt.Sprintf("panic: %v", r)
				}
			}
		}()
		s.run(c)
		done <- ""
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(scenarioTimeout + 5*time.Second):
		return fmt.Sprintf("scenario timed out after %s", scenarioTimeout)
	}
}

func main() {
	rawURL := os.Getenv("INTEROP_AMQP_URL")
	if rawURL == "" {
		fmt.Fprintf(os.Stderr, "INTEROP_AMQP_URL is not set (e.g. %s)\n", "amqp://guest:guest@127.0.0.1:5672/%2F")
		os.Exit(2)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bad INTEROP_AMQP_URL: %v\n", err)
		os.Exit(2)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		fmt.Fprintf(os.Stderr, "refusing to connect to %q: interop scenarios only talk to the loopback\n", h)
		os.Exit(2)
	}
	pendingOn := os.Getenv("WARREN_INTEROP_PENDING") == "1"
	args := os.Args[1:]
	known := map[string]bool{}
	for _, s := range scenarios {
		known[s.name] = true
	}
	for _, a := range args {
		if !known[a] {
			fmt.Fprintf(os.Stderr, "unknown scenario %q\n", a)
			os.Exit(2)
		}
	}
	selected := func(name string) bool {
		if len(args) == 0 {
			return true
		}
		for _, a := range args {
			if a == name {
				return true
			}
		}
		return false
	}
	failed := 0
	for _, s := range scenarios {
		if !selected(s.name) {
			continue
		}
		if s.pending && !pendingOn && len(args) == 0 {
			fmt.Printf("pending %s\n", s.name)
			continue
		}
		if needsTLS[s.name] && tlsFromEnv() == nil {
			fmt.Println(skipTLSLine(s.name))
			continue
		}
		if needsPlugins[s.name] && os.Getenv("INTEROP_PLUGINS") != "1" {
			fmt.Printf("skipped %s: %s\n", s.name, pluginsSkip)
			continue
		}
		c := newCtx(rawURL, strings.SplitN(s.name, "-", 2)[0])
		start := time.Now()
		if r := runOne(s, c); r == "" {
			fmt.Printf("ok %s (%.1fs)\n", s.name, time.Since(start).Seconds())
		} else {
			failed++
			fmt.Printf("FAIL %s: %s\n", s.name, r)
		}
		c.cleanup()
	}
	if failed > 0 {
		os.Exit(1)
	}
}
