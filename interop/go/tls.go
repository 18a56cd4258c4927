package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// tlsEnv is what run.sh exports when it starts a broker with amqps.
var tlsEnv = []string{"INTEROP_AMQPS_URL", "INTEROP_TLS_CA", "INTEROP_TLS_CERT", "INTEROP_TLS_KEY"}

// needsTLS names the scenarios skipped (not counted) without tlsEnv.
var needsTLS = map[string]bool{"h-tls": true}

type tlsSettings struct {
	url, ca, cert, key string
}

// tlsFromEnv returns run.sh's amqps settings, or nil when they are not all set.
func tlsFromEnv() *tlsSettings {
	v := make([]string, len(tlsEnv))
	for i, k := range tlsEnv {
		if v[i] = os.Getenv(k); v[i] == "" {
			return nil
		}
	}
	u, err := url.Parse(v[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "bad INTEROP_AMQPS_URL: %v\n", err)
		os.Exit(2)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		fmt.Fprintf(os.Stderr, "refusing to connect to %q: interop scenarios only talk to the loopback\n", h)
		os.Exit(2)
	}
	return &tlsSettings{v[0], v[1], v[2], v[3]}
}

func skipTLSLine(name string) string {
	return fmt.Sprintf("skipped %s: no amqps broker (%s are not all set)", name, strings.Join(tlsEnv, ", "))
}

// connectTLS opens an amqps connection verifying the server with cfg; with
// external, it logs in with SASL EXTERNAL (the client certificate's CN).
func (c *ctx) connectTLS(label, rawURL string, cfg *tls.Config, external bool) (*amqp.Connection, error) {
	config := amqp.Config{
		Heartbeat:       10 * time.Second,
		Locale:          "en_US",
		Properties:      amqp.Table{"connection_name": c.prefix + "." + label},
		Dial:            amqp.DefaultDial(10 * time.Second),
		TLSClientConfig: cfg,
	}
	if external {
		config.SASL = []amqp.Authentication{&amqp.ExternalAuth{}}
	}
	conn, err := amqp.DialConfig(rawURL, config)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

// h. TLS: amqps verified against the run's CA, confirms and consumes over
// it, then EXTERNAL login with a client certificate.
func scenarioH(c *ctx) {
	s := tlsFromEnv()
	caPEM, err := os.ReadFile(s.ca)
	must(err, "read the CA")
	roots := x509.NewCertPool()
	check(roots.AppendCertsFromPEM(caPEM), "no certificate in %s", s.ca)

	// A server certificate from an unknown CA is refused by the client.
	_, err = c.connectTLS("untrusted", s.url, &tls.Config{MinVersion: tls.VersionTLS12}, false)
	check(err != nil, "connected over amqps although the server certificate is not trusted")

	conn, err := c.connectTLS("tls-plain", s.url, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, false)
	must(err, "connect over amqps")
	ch := c.channel(conn)
	q := c.declareQueue(ch, "tls", false, nil)
	const n = 50
	p := newConfirmer(ch, n)
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("tls-%d-%s", i, strings.Repeat("x", i*97))
		p.publish("", q, false, amqp.Publishing{Body: []byte(bodies[i]), DeliveryMode: amqp.Persistent})
	}
	p.wait(n, c.deadline)
	check(depth(ch, q) == n, "queue should hold %d confirmed messages", n)
	cch := c.channel(conn)
	must(cch.Qos(10, 0, false), "basic.qos")
	var got collector
	consume(cch, q, false, func(d amqp.Delivery) {
		got.add(string(d.Body))
		if err := d.Ack(false); err != nil {
			c.errs.add("ack: " + err.Error())
		}
	})
	c.waitFor(func() bool { return got.len() >= n }, "the messages published over TLS", 200*time.Millisecond)
	check(sameStrings(got.list(), bodies), "consumed %d messages over TLS, not the %d published in order", got.len(), n)

	// EXTERNAL: the client certificate's CN names the user; no password is sent.
	pair, err := tls.LoadX509KeyPair(s.cert, s.key)
	must(err, "load the client certificate")
	ext, err := c.connectTLS("tls-external", s.url,
		&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, true)
	must(err, "connect with EXTERNAL")
	ech := c.channel(ext)
	eq, err := ech.QueueDeclare("", false, false, true, false, nil)
	must(err, "declare an exclusive queue")
	ep := newConfirmer(ech, 2)
	for _, b := range []string{"external-1", "external-2"} {
		ep.publish("", eq.Name, false, amqp.Publishing{Body: []byte(b)})
	}
	ep.wait(2, c.deadline)
	var fetched []string
	for i := 0; i < 2; i++ {
		m, ok, err := ech.Get(eq.Name, true)
		must(err, "basic.get")
		check(ok, "basic.get on the EXTERNAL connection found no message")
		fetched = append(fetched, string(m.Body))
	}
	check(sameStrings(fetched, []string{"external-1", "external-2"}), "EXTERNAL connection got %v", fetched)
}
