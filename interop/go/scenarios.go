package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// deliveries is a goroutine-safe list of deliveries (kept to ack them later).
type deliveries struct {
	mu    sync.Mutex
	items []amqp.Delivery
}

func (d *deliveries) add(x amqp.Delivery) {
	d.mu.Lock()
	d.items = append(d.items, x)
	d.mu.Unlock()
}

func (d *deliveries) list() []amqp.Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]amqp.Delivery(nil), d.items...)
}

func (d *deliveries) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.items)
}

// ---------------------------------------------------------------------------
// a. work queue: prefetch 1, manual acks, two workers

func scenarioA(c *ctx) {
	setup, _ := c.connect("setup")
	sch := c.channel(setup)
	q := c.declareQueue(sch, "work", false, nil)
	pub := newConfirmer(sch, 1000)

	// Phase 1: worker A holds one job; with prefetch 1 every other job goes to B.
	n1 := 20
	for _, body := range names(n1, "job-%d") {
		pub.publish("", q, false, amqp.Publishing{Body: []byte(body)})
	}
	pub.wait(n1, c.deadline)
	aConn, _ := c.connect("worker-a")
	bConn, _ := c.connect("worker-b")
	aCh, bCh := c.channel(aConn), c.channel(bConn)
	must(aCh.Qos(1, 0, false), "qos A")
	must(bCh.Qos(1, 0, false), "qos B")
	var aGot deliveries
	var bGot collector
	consume(aCh, q, false, aGot.add)
	c.waitFor(func() bool { return aGot.len() >= 1 }, "worker A's first job", 0)
	consume(bCh, q, false, func(d amqp.Delivery) {
		if d.Redelivered {
			c.errs.add("worker B got a redelivered job " + string(d.Body))
		}
		bGot.add(string(d.Body))
		_ = d.Ack(false)
	})
	c.waitFor(func() bool { return bGot.len() >= n1-1 }, "worker B to take the other jobs", 300*time.Millisecond)
	a := aGot.list()
	check(len(a) == 1, "worker A holds an unacked job with prefetch 1 but got %d jobs", len(a))
	check(bGot.len() == n1-1, "worker B should get %d jobs, got %d", n1-1, bGot.len())
	must(a[0].Ack(false), "ack A")
	all := append(bGot.list(), string(a[0].Body))
	check(sameStrings(sortedCopy(all), sortedCopy(names(n1, "job-%d"))), "phase 1: jobs lost or duplicated")
	must(aCh.Qos(1, 0, false), "qos round trip") // the ack is in
	check(depth(sch, q) == 0, "phase 1: queue not empty after all jobs were acked")
	_ = aConn.Close()
	_ = bConn.Close()

	// Phase 2: two workers share 200 jobs; each is processed once, both get work.
	n2 := 200
	done := map[string]*collector{"A": {}, "B": {}}
	for _, tag := range []string{"A", "B"} {
		conn, _ := c.connect("worker2-" + tag)
		ch := c.channel(conn)
		must(ch.Qos(1, 0, false), "qos")
		col := done[tag]
		consume(ch, q, false, func(d amqp.Delivery) {
			time.Sleep(2 * time.Millisecond) // the "work"
			if d.Redelivered {
				c.errs.add("phase 2: a job was redelivered")
			}
			col.add(string(d.Body))
			_ = d.Ack(false)
		})
	}
	for _, body := range names(n2, "task-%d") {
		pub.publish("", q, false, amqp.Publishing{Body: []byte(body)})
	}
	pub.wait(n2, c.deadline)
	c.waitFor(func() bool { return done["A"].len()+done["B"].len() >= n2 }, "all tasks processed", 200*time.Millisecond)
	all = append(done["A"].list(), done["B"].list()...)
	check(len(all) == n2, "phase 2: %d deliveries for %d jobs", len(all), n2)
	check(sameStrings(sortedCopy(all), sortedCopy(names(n2, "task-%d"))), "phase 2: jobs lost or duplicated")
	check(done["A"].len() > 0 && done["B"].len() > 0, "phase 2: one worker got no work (A=%d, B=%d)",
		done["A"].len(), done["B"].len())
	check(depth(sch, q) == 0, "phase 2: queue not empty")
}

// ---------------------------------------------------------------------------
// b. publisher confirms under load

func scenarioB(c *ctx) {
	n, m := 5000, 500
	conn, _ := c.connect("publisher")
	ch := c.channel(conn)
	q := c.declareQueue(ch, "confirms", true, nil)
	pub := newConfirmer(ch, n+m+10)
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))

	// Pipelined: 5000 persistent publishes, then every confirm in order.
	body := func(i int) string { return fmt.Sprintf("%06d%s", i, strings.Repeat(".", 100)) }
	for i := 0; i < n; i++ {
		pub.publish("", q, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body(i))})
	}
	pub.wait(n, c.deadline.Add(-10*time.Second))

	// One at a time: each publish waits for its own confirm.
	for i := 0; i < m; i++ {
		pub.publish("", q, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf("sync-%d", i))})
		pub.wait(1, c.deadline)
	}
	// A mandatory message that no queue takes comes back (basic.return), then is confirmed.
	pub.publish("", c.name("nowhere"), true, amqp.Publishing{Body: []byte("lost")})
	select {
	case r := <-returns:
		check(r.ReplyCode == 312, "basic.return with code %d, expected 312 NO_ROUTE", r.ReplyCode)
	case <-time.After(10 * time.Second):
		panic(failure{"mandatory unroutable message: no basic.return"})
	}
	pub.wait(1, c.deadline)

	check(depth(ch, q) == n+m, "queue holds %d messages, expected %d", depth(ch, q), n+m)
	var got collector
	consume(ch, q, true, func(d amqp.Delivery) { got.add(string(d.Body)) })
	c.waitFor(func() bool { return got.len() >= n+m }, fmt.Sprintf("%d messages back", n+m), 100*time.Millisecond)
	all := got.list()
	check(len(all) == n+m, "consumed %d messages, expected %d", len(all), n+m)
	for i := 0; i < n; i++ {
		check(all[i] == body(i), "pipelined batch came back changed or out of order at %d", i)
	}
	check(sameStrings(all[n:], names(m, "sync-%d")), "sync batch came back changed or out of order")
}

// ---------------------------------------------------------------------------
// c. topic pub/sub with two consumer groups (competing consumers inside each)

var topicKeys = []struct {
	key    string
	groups []string
}{
	{"orders.eu.created", []string{"g1", "g2"}},
	{"orders.us.created", []string{"g1"}},
	{"orders.eu.cancelled", []string{"g2"}},
	{"billing.eu.invoice.paid", []string{"g2"}},
	{"audit.us.login", []string{"g2"}},
	{"audit", []string{"g2"}},
	{"inventory.us.restocked", nil},
	{"orders.created", nil},
}

var topicBindings = map[string][]string{"g1": {"orders.*.created"}, "g2": {"*.eu.#", "audit.#"}}

func scenarioC(c *ctx) {
	setup, _ := c.connect("setup")
	ch := c.channel(setup)
	ex := c.declareExchange(ch, "events", "topic")
	groups := []string{"g1", "g2"}
	got := map[string]*collector{}
	for _, g := range groups {
		q := c.declareQueue(ch, g, false, nil)
		for _, p := range topicBindings[g] {
			must(ch.QueueBind(q, p, ex, false, nil), "bind "+p)
		}
		for _, member := range []string{"1", "2"} {
			key := g + "-" + member
			col := &collector{}
			got[key] = col
			conn, _ := c.connect(key)
			cch := c.channel(conn)
			must(cch.Qos(5, 0, false), "qos")
			consume(cch, q, false, func(d amqp.Delivery) {
				col.add(d.MessageId + "|" + d.RoutingKey)
				_ = d.Ack(false)
			})
		}
	}
	pub := newConfirmer(ch, 1000)
	total := len(topicKeys) * 15
	expected := map[string]map[string]bool{"g1": {}, "g2": {}}
	for i := 0; i < total; i++ {
		k := topicKeys[i%len(topicKeys)]
		pub.publish(ex, k.key, false, amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte("event")})
		for _, g := range k.groups {
			expected[g][fmt.Sprintf("%d|%s", i, k.key)] = true
		}
	}
	pub.wait(total, c.deadline)
	received := func(g string) []string { return append(got[g+"-1"].list(), got[g+"-2"].list()...) }
	c.waitFor(func() bool {
		return len(received("g1")) >= len(expected["g1"]) && len(received("g2")) >= len(expected["g2"])
	}, "both groups' messages", 300*time.Millisecond)
	for _, g := range groups {
		r := received(g)
		seen := map[string]bool{}
		var extra []string
		for _, x := range r {
			check(!seen[x], "group %s: %s delivered twice", g, x)
			seen[x] = true
			if !expected[g][x] {
				extra = append(extra, x)
			}
		}
		var missing []string
		for x := range expected[g] {
			if !seen[x] {
				missing = append(missing, x)
			}
		}
		check(len(missing) == 0 && len(extra) == 0, "group %s: missing %v, unexpected %v", g, missing, extra)
		check(got[g+"-1"].len() > 0 && got[g+"-2"].len() > 0, "group %s: competing consumers did not share (%d/%d)",
			g, got[g+"-1"].len(), got[g+"-2"].len())
	}
}

// ---------------------------------------------------------------------------
// d. a consumer dies mid-batch; its unacked messages go to the other consumer

func diesRound(c *ctx, how string) {
	n := 50
	setup, _ := c.connect("setup-" + how)
	ch := c.channel(setup)
	q := c.declareQueue(ch, "batch-"+how, false, nil)
	ids := names(n, "m%02d")
	pub := newConfirmer(ch, n)
	for _, id := range ids {
		pub.publish("", q, false, amqp.Publishing{Body: []byte(id)})
	}
	pub.wait(n, c.deadline)

	aConn, aSock := c.connect("consumer-a-" + how)
	aCh := c.channel(aConn)
	must(aCh.Qos(10, 0, false), "qos A")
	var aGot deliveries
	consume(aCh, q, false, aGot.add)
	c.waitFor(func() bool { return aGot.len() >= 10 }, "consumer A's batch", 0)
	a := aGot.list()
	for _, d := range a[:4] {
		must(d.Ack(false), "ack A")
	}
	must(aCh.Qos(10, 0, false), "qos round trip") // the acks are in
	aSeen, aAcked := map[string]bool{}, map[string]bool{}
	for i, d := range a {
		check(!d.Redelivered, "consumer A got %s marked redelivered", d.Body)
		aSeen[string(d.Body)] = true
		if i < 4 {
			aAcked[string(d.Body)] = true
		}
	}

	bConn, _ := c.connect("consumer-b-" + how)
	bCh := c.channel(bConn)
	must(bCh.Qos(10, 0, false), "qos B")
	var mu sync.Mutex
	bGot := map[string]bool{} // body -> redelivered
	var dup []string
	consume(bCh, q, false, func(d amqp.Delivery) {
		mu.Lock()
		if _, ok := bGot[string(d.Body)]; ok {
			dup = append(dup, string(d.Body))
		}
		bGot[string(d.Body)] = d.Redelivered
		mu.Unlock()
		_ = d.Ack(false)
	})
	bLen := func() int { mu.Lock(); defer mu.Unlock(); return len(bGot) + len(dup) }
	c.waitFor(func() bool { return bLen() >= 5 }, "consumer B's first messages", 0)
	// A dies mid-batch, holding unacked messages.
	check(aGot.len() <= 14, "consumer A (prefetch 10, acked 4) was sent %d messages", aGot.len())
	if how == "kill" {
		_ = aSock.Close() // TCP closes without connection.close
	} else {
		must(aConn.Close(), "close A")
	}
	want := n - len(aAcked)
	c.waitFor(func() bool { return bLen() >= want }, fmt.Sprintf("%d messages at consumer B", want), 300*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	check(len(dup) == 0, "consumer B got %v twice", dup)
	var lost, notFlagged []string
	redelivered := 0
	for _, id := range ids {
		r, ok := bGot[id]
		switch {
		case aAcked[id]:
			check(!ok, "%s was acked by A but delivered to B", id)
		case !ok:
			lost = append(lost, id)
		case aSeen[id] && !r:
			notFlagged = append(notFlagged, id)
		}
		if ok && r {
			redelivered++
		}
	}
	check(len(lost) == 0, "lost: %v", lost)
	check(len(notFlagged) == 0, "A's unacked messages %v reached B without redelivered=true", notFlagged)
	check(redelivered >= 6 && redelivered <= 10, "%d redelivered messages; A held 6 to 10 unacked", redelivered)
	check(depth(ch, q) == 0, "queue not empty at the end")
}

func scenarioD(c *ctx) {
	diesRound(c, "kill")
	diesRound(c, "close")
}

// ---------------------------------------------------------------------------
// e. headers routing (x-match all and any)

func scenarioE(c *ctx) {
	conn, _ := c.connect("setup")
	ch := c.channel(conn)
	ex := c.declareExchange(ch, "hdr", "headers")
	qAll := c.declareQueue(ch, "all", false, nil)
	qAny := c.declareQueue(ch, "any", false, nil)
	qNum := c.declareQueue(ch, "num", false, nil)
	must(ch.QueueBind(qAll, "", ex, false, amqp.Table{"x-match": "all", "format": "pdf", "type": "report"}), "bind all")
	must(ch.QueueBind(qAny, "", ex, false, amqp.Table{"x-match": "any", "format": "zip", "region": "eu"}), "bind any")
	must(ch.QueueBind(qNum, "", ex, false, amqp.Table{"version": int32(2)}), "bind num") // x-match defaults to all
	cases := []struct {
		headers amqp.Table
		dest    string
	}{
		{amqp.Table{"format": "pdf", "type": "report"}, "all"},
		{amqp.Table{"format": "pdf", "type": "report", "extra": "x"}, "all"},
		{amqp.Table{"format": "pdf"}, ""},
		{amqp.Table{"format": "zip"}, "any"},
		{amqp.Table{"region": "eu", "type": "report"}, "any"},
		{amqp.Table{"format": "pdf", "type": "log"}, ""},
		{nil, ""},
		{amqp.Table{"format": "zip", "region": "eu", "type": "report"}, "any"},
		{amqp.Table{"format": "pdf", "type": "report", "region": "eu"}, "all,any"},
		{amqp.Table{"version": int32(2)}, "num"},
		{amqp.Table{"version": int32(3), "format": "zip"}, "any"},
		{amqp.Table{"x-match": "any", "format": "pdf"}, ""},
	}
	pub := newConfirmer(ch, len(cases))
	for i, tc := range cases {
		pub.publish(ex, fmt.Sprintf("ignored.%d", i), false,
			amqp.Publishing{MessageId: fmt.Sprint(i), Headers: tc.headers, Body: []byte("doc")})
	}
	pub.wait(len(cases), c.deadline)
	for _, qc := range []struct{ label, q string }{{"all", qAll}, {"any", qAny}, {"num", qNum}} {
		var got, want []string
		for {
			d, ok, err := ch.Get(qc.q, true)
			must(err, "basic.get")
			if !ok {
				break
			}
			got = append(got, d.MessageId)
		}
		for i, tc := range cases {
			for _, dest := range strings.Split(tc.dest, ",") {
				if dest == qc.label {
					want = append(want, fmt.Sprint(i))
				}
			}
		}
		check(sameStrings(got, want), "x-match %s queue got %v, expected %v", qc.label, got, want)
	}
}

// ---------------------------------------------------------------------------
// f. retry: nack -> DLX -> retry queue with TTL -> back to the work queue

func xDeath(h amqp.Table, queue, reason string) amqp.Table {
	list, _ := h["x-death"].([]interface{})
	for _, e := range list {
		if t, ok := e.(amqp.Table); ok && t["queue"] == queue && t["reason"] == reason {
			return t
		}
	}
	return nil
}

func deathCount(t amqp.Table) int64 {
	switch v := t["count"].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int16:
		return int64(v)
	case int8:
		return int64(v)
	}
	return -1
}

func scenarioF(c *ctx) {
	c.shortenDeadline(pendingTimeout)
	conn, _ := c.connect("setup")
	ch := c.channel(conn)
	retryEx := c.declareExchange(ch, "retry", "direct")
	work := c.declareQueue(ch, "work", false, amqp.Table{"x-dead-letter-exchange": retryEx})
	retry := c.declareQueue(ch, "retry-wait", false, amqp.Table{"x-message-ttl": int32(200), "x-dead-letter-exchange": ""})
	must(ch.QueueBind(retry, work, retryEx, false, nil), "bind retry")

	n, attempts := 10, int64(3)
	var mu sync.Mutex
	seen := map[string]int64{}
	finals := map[string]amqp.Table{}
	wconn, _ := c.connect("worker")
	wch := c.channel(wconn)
	must(wch.Qos(5, 0, false), "qos")
	consume(wch, work, false, func(d amqp.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		body := string(d.Body)
		seen[body]++
		attempt := int64(1)
		if rej := xDeath(d.Headers, work, "rejected"); rej != nil {
			attempt += deathCount(rej)
		}
		if attempt != seen[body] {
			c.errs.add(fmt.Sprintf("%s: attempt %d but x-death says %d", body, seen[body], attempt))
		}
		if attempt < attempts {
			_ = d.Nack(false, false)
		} else {
			finals[body] = d.Headers
			_ = d.Ack(false)
		}
	})
	pub := newConfirmer(ch, n)
	for i := 0; i < n; i++ {
		pub.publish("", work, false, amqp.Publishing{Body: []byte(fmt.Sprintf("job-%d", i))})
	}
	pub.wait(n, c.deadline)
	c.waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return len(finals) >= n },
		"every job's third attempt", 500*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for body, count := range seen {
		check(count == attempts, "%s was delivered %d times, expected %d", body, count, attempts)
	}
	for body, h := range finals {
		rej, exp := xDeath(h, work, "rejected"), xDeath(h, retry, "expired")
		check(rej != nil && deathCount(rej) == attempts-1 && rej["exchange"] == "",
			"%s: x-death for the work queue is %v", body, rej)
		check(exp != nil && deathCount(exp) == attempts-1 && exp["exchange"] == retryEx,
			"%s: x-death for the retry queue is %v", body, exp)
	}
	check(depth(ch, work) == 0 && depth(ch, retry) == 0, "queues not empty at the end")
}

// ---------------------------------------------------------------------------
// g. RPC with direct reply-to

func scenarioG(c *ctx) {
	c.shortenDeadline(pendingTimeout)
	sconn, _ := c.connect("server")
	sch := c.channel(sconn)
	rpcQ := c.declareQueue(sch, "rpc", false, nil)
	must(sch.Qos(10, 0, false), "qos")
	var replyTos collector
	consume(sch, rpcQ, false, func(d amqp.Delivery) {
		replyTos.add(d.ReplyTo)
		err := sch.Publish("", d.ReplyTo, false, false, amqp.Publishing{
			CorrelationId: d.CorrelationId,
			Body:          []byte(strings.ToUpper(string(d.Body))),
		})
		if err != nil {
			c.errs.add("server reply: " + err.Error())
		}
		_ = d.Ack(false)
	})

	cconn, _ := c.connect("client")
	cch := c.channel(cconn)
	var mu sync.Mutex
	replies := map[string]string{}
	consume(cch, "amq.rabbitmq.reply-to", true, func(d amqp.Delivery) {
		mu.Lock()
		replies[d.CorrelationId] = string(d.Body)
		mu.Unlock()
	})
	n := 20
	requests := map[string]string{}
	for i := 0; i < n; i++ {
		cid := fmt.Sprintf("%s-%d", c.prefix, i)
		requests[cid] = fmt.Sprintf("request-%d", i)
		must(cch.Publish("", rpcQ, false, false, amqp.Publishing{
			ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: cid, Body: []byte(requests[cid]),
		}), "publish request")
	}
	c.waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return len(replies) >= n }, fmt.Sprintf("%d replies", n),
		200*time.Millisecond)
	for _, r := range replyTos.list() {
		check(strings.HasPrefix(r, "amq.rabbitmq.reply-to."), "server saw reply_to %q, expected amq.rabbitmq.reply-to.<token>", r)
	}
	mu.Lock()
	defer mu.Unlock()
	for cid, body := range requests {
		check(replies[cid] == strings.ToUpper(body), "reply to %s is %q", body, replies[cid])
	}
}

// asInt is a header's integer value, of any width.
func asInt(v interface{}) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

// ---------------------------------------------------------------------------
// i. delayed retries: a job fails twice and succeeds on the third attempt

var retryArgs = amqp.Table{
	"x-delayed-retry-min":        int32(200),
	"x-delayed-retry-max":        int32(2000),
	"x-delayed-retry-multiplier": int32(2), // exponential: 200 ms, then 400 ms
	"x-delayed-retry-jitter":     "equal",  // each delay uniformly between half and all of it
	"x-delivery-limit":           int32(5),
}

// retryGaps are jitter's bounds on the 1st and 2nd retry.
var retryGaps = [2][2]time.Duration{{100 * time.Millisecond, 200 * time.Millisecond}, {200 * time.Millisecond, 400 * time.Millisecond}}

const retrySlack = 150 * time.Millisecond // scheduling slack above the upper bounds only

type arrival struct {
	at          time.Time
	body        string
	redelivered bool
	headers     amqp.Table
}

func scenarioI(c *ctx) {
	conn, _ := c.connect("setup")
	ch := c.channel(conn)
	q := c.declareQueue(ch, "jobs", true, retryArgs)
	pub := newConfirmer(ch, 10)
	wconn, _ := c.connect("worker")
	wch := c.channel(wconn)
	must(wch.Qos(10, 0, false), "qos")
	var mu sync.Mutex
	var got []arrival
	count := func(body string) int { // with mu held
		n := 0
		for _, g := range got {
			if g.body == body {
				n++
			}
		}
		return n
	}
	consume(wch, q, false, func(d amqp.Delivery) {
		mu.Lock()
		got = append(got, arrival{time.Now(), string(d.Body), d.Redelivered, d.Headers})
		n := count("job-1")
		mu.Unlock()
		if string(d.Body) == "job-1" && n < 3 {
			_ = d.Reject(true) // fails: back after a backoff
		} else {
			_ = d.Ack(false)
		}
	})
	counted := func(body string, n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return count(body) >= n }
	}
	pub.publish("", q, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("job-1")})
	pub.wait(1, c.deadline)
	c.waitFor(counted("job-1", 2), "job-1's first retry", 0)
	// job-1 waits out its second backoff: a job published now is not held behind it.
	sent := time.Now()
	pub.publish("", q, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("job-2")})
	pub.wait(1, c.deadline)
	c.waitFor(counted("job-2", 1), "job-2", 0)
	c.waitFor(counted("job-1", 3), "job-1's second retry", 300*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	var order []string
	var attempts []arrival
	var job2 arrival
	seen := map[string]int{}
	for _, g := range got {
		seen[g.body]++
		order = append(order, fmt.Sprintf("%s#%d", g.body, seen[g.body]))
		if g.body == "job-1" {
			attempts = append(attempts, g)
		} else {
			job2 = g
		}
	}
	check(sameStrings(order, []string{"job-1#1", "job-1#2", "job-2#1", "job-1#3"}),
		"deliveries (job#attempt) %v; job-2 must come while job-1 waits, job-1 three times", order)
	_, has := job2.headers["x-delivery-count"]
	check(!job2.redelivered && !has, "job-2 (first delivery) has redelivered=%v, headers %v", job2.redelivered, job2.headers)
	check(!attempts[0].redelivered, "job-1's first delivery is marked redelivered")
	_, has = attempts[0].headers["x-delivery-count"]
	check(!has, "job-1's first delivery has x-delivery-count: %v", attempts[0].headers)
	for n := 1; n <= 2; n++ {
		v := attempts[n].headers["x-delivery-count"]
		dc, ok := asInt(v)
		check(attempts[n].redelivered, "job-1's delivery %d is not marked redelivered", n+1)
		check(ok && dc == int64(n), "job-1's delivery %d has x-delivery-count %#v, expected %d", n+1, v, n)
		lo, hi := retryGaps[n-1][0], retryGaps[n-1][1]
		gap := attempts[n].at.Sub(attempts[n-1].at)
		check(gap >= lo && gap <= hi+retrySlack, "retry %d came %d ms after delivery %d, expected %d-%d ms (+%d ms slack)",
			n, gap.Milliseconds(), n, lo.Milliseconds(), hi.Milliseconds(), retrySlack.Milliseconds())
	}
	check(job2.at.Sub(sent) < retryGaps[1][0], "job-2 took %d ms from publish to delivery while job-1 waited",
		job2.at.Sub(sent).Milliseconds())
	check(depth(ch, q) == 0, "queue not empty at the end")
}

// ---------------------------------------------------------------------------
// j. a delayed job through an x-delayed-message exchange

func scenarioJ(c *ctx) {
	const delay = 300 // ms
	conn, _ := c.connect("setup")
	ch := c.channel(conn)
	ex := c.declareExchangeArgs(ch, "later", "x-delayed-message", true, amqp.Table{"x-delayed-type": "direct"})
	q := c.declareQueue(ch, "jobs", true, nil)
	must(ch.QueueBind(q, "job", ex, false, nil), "bind")
	pub := newConfirmer(ch, 1)
	t0 := time.Now()
	pub.publish(ex, "job", false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, Headers: amqp.Table{"x-delay": int32(delay)}, Body: []byte("delayed-job"),
	})
	pub.wait(1, c.deadline)
	for elapsed := time.Duration(0); elapsed < 250*time.Millisecond; elapsed = time.Since(t0) {
		n := depth(ch, q)
		check(n == 0, "the queue holds %d message(s) %d ms after the publish (x-delay %d)", n, elapsed.Milliseconds(), delay)
		time.Sleep(20 * time.Millisecond)
	}
	var mu sync.Mutex
	var got []arrival
	var first amqp.Delivery
	consume(ch, q, true, func(d amqp.Delivery) {
		mu.Lock()
		if len(got) == 0 {
			first = d
		}
		got = append(got, arrival{time.Now(), string(d.Body), d.Redelivered, d.Headers})
		mu.Unlock()
	})
	c.waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 1 }, "the delayed message", 300*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	check(len(got) == 1, "%d deliveries of one delayed message", len(got))
	waited := got[0].at.Sub(t0)
	check(waited >= delay*time.Millisecond, "the message arrived %d ms after its publish, x-delay was %d",
		waited.Milliseconds(), delay)
	check(string(first.Body) == "delayed-job" && first.RoutingKey == "job" && first.DeliveryMode == amqp.Persistent,
		"delivered %q with routing key %q, delivery mode %d", first.Body, first.RoutingKey, first.DeliveryMode)
	v := first.Headers["x-delay"]
	xDelay, ok := asInt(v)
	check(ok && xDelay == -delay, "delivered with x-delay %#v, expected %d", v, -delay)
}

// ---------------------------------------------------------------------------
// k. a duplicate webhook swallowed by an x-message-deduplication exchange

func scenarioK(c *ctx) {
	conn, _ := c.connect("setup")
	ch := c.channel(conn)
	ex := c.declareExchangeArgs(ch, "webhooks", "x-message-deduplication", false,
		amqp.Table{"x-cache-size": int32(1000), "x-cache-ttl": int32(60000)})
	q := c.declareQueue(ch, "deliveries", false, nil)
	must(ch.QueueBind(q, "", ex, false, nil), "bind")
	pub := newConfirmer(ch, 3)
	event, other := "evt-"+c.prefix+".1", "evt-"+c.prefix+".2"
	for _, s := range []struct{ id, body string }{
		{event, "webhook-1"}, {event, "webhook-1-again"}, {other, "webhook-2"},
	} {
		pub.publish(ex, "", false, amqp.Publishing{
			Headers: amqp.Table{"x-deduplication-header": s.id}, Body: []byte(s.body),
		})
		pub.wait(1, c.deadline) // fails on a nack: every publish is confirmed
	}
	var got collector
	consume(ch, q, true, func(d amqp.Delivery) { got.add(string(d.Body)) })
	c.waitFor(func() bool { return got.len() >= 2 }, "the two distinct webhooks", 300*time.Millisecond)
	check(sameStrings(got.list(), []string{"webhook-1", "webhook-2"}),
		"the queue got %v, expected [webhook-1 webhook-2]", got.list())
}

// ---------------------------------------------------------------------------
// l. stream queue: three consumer services fan out, a fourth replays from a timestamp

// streamRecord is one delivery a stream consumer saw.
type streamRecord struct {
	offset      int64
	hasOffset   bool
	rawOffset   interface{}
	body        string
	redelivered bool
}

// streamLog is a goroutine-safe list of streamRecords.
type streamLog struct {
	mu    sync.Mutex
	items []streamRecord
}

func (s *streamLog) add(r streamRecord) {
	s.mu.Lock()
	s.items = append(s.items, r)
	s.mu.Unlock()
}

func (s *streamLog) list() []streamRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]streamRecord(nil), s.items...)
}

func (s *streamLog) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// streamOffset reads the x-stream-offset header, whatever integer type carries it.
func streamOffset(h amqp.Table) (int64, bool) {
	switch v := h["x-stream-offset"].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint64:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint8:
		return int64(v), true
	case int:
		return int64(v), true
	}
	return 0, false
}

func recordBodies(rs []streamRecord) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.body
	}
	return out
}

func sameOffsets(a, b []streamRecord) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].offset != b[i].offset {
			return false
		}
	}
	return true
}

func scenarioL(c *ctx) {
	n1, n2 := 150, 150
	n := n1 + n2
	bodies := names(n, "event-%d")
	setup, _ := c.connect("setup")
	sch := c.channel(setup)
	q := c.declareQueue(sch, "events", true, amqp.Table{"x-queue-type": "stream"})

	// A stream consumer without basic.qos is refused: channel close 406, the connection lives on.
	rconn, _ := c.connect("no-prefetch")
	rch := c.channel(rconn)
	_, err := rch.Consume(q, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	check(err != nil, "basic.consume on a stream without basic.qos was accepted, expected 406")
	aerr, ok := err.(*amqp.Error)
	check(ok && aerr.Code == 406, "basic.consume without prefetch: %v, expected a channel close 406 PRECONDITION_FAILED", err)
	check(!rconn.IsClosed(), "the refused consume closed the connection, expected only the channel")
	must(c.channel(rconn).Close(), "open and close a channel after the refusal") // the connection still works
	_ = rconn.Close()

	consumer := func(label string, offset interface{}) (*amqp.Connection, *streamLog) {
		conn, _ := c.connect(label)
		ch := c.channel(conn)
		must(ch.Qos(50, 0, false), "qos "+label)
		got := &streamLog{}
		msgs, err := ch.Consume(q, "", false, false, false, false, amqp.Table{"x-stream-offset": offset})
		must(err, "consume "+label)
		go func() {
			for d := range msgs {
				off, has := streamOffset(d.Headers)
				got.add(streamRecord{offset: off, hasOffset: has, rawOffset: d.Headers["x-stream-offset"], body: string(d.Body), redelivered: d.Redelivered})
				if err := d.Ack(false); err != nil {
					c.errs.add(fmt.Sprintf("%s: ack: %v", label, err))
				}
			}
		}()
		return conn, got
	}

	// Three services attached before anything is published, each on its own connection.
	type service struct {
		conn *amqp.Connection
		got  *streamLog
	}
	var services []service
	for i, off := range []string{"first", "next", "first"} {
		conn, got := consumer(fmt.Sprintf("service-%d", i), off)
		services = append(services, service{conn, got})
	}

	pconn, _ := c.connect("publisher")
	pub := newConfirmer(c.channel(pconn), n+10)
	publishBatch := func(batch []string) {
		for _, body := range batch {
			pub.publish("", q, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
		}
		pub.wait(len(batch), c.deadline)
	}
	publishBatch(bodies[:n1])
	// A timestamp (whole seconds) after the first batch's last confirm, and the second
	// batch published after it: at least 1.5 s after the first.
	t1 := time.Now()
	ts := time.Unix(t1.Unix()+1, 0)
	wake := t1.Add(1500 * time.Millisecond)
	if w := ts.Add(200 * time.Millisecond); w.After(wake) {
		wake = w
	}
	time.Sleep(time.Until(wake))
	publishBatch(bodies[n1:])

	c.waitFor(func() bool {
		for _, s := range services {
			if s.got.len() < n {
				return false
			}
		}
		return true
	}, "every service to read every message", 300*time.Millisecond)
	var first []streamRecord
	for i, s := range services {
		got := s.got.list()
		gb := recordBodies(got)
		head := gb
		if len(head) > 3 {
			head = head[:3]
		}
		check(sameStrings(gb, bodies), "service %d got %d messages (first %v), expected all %d in order", i, len(got), head, n)
		for j, r := range got {
			check(r.hasOffset, "service %d: message %d (%s) has x-stream-offset %#v, expected an integer",
				i, j, r.body, r.rawOffset)
			check(j == 0 || got[j-1].offset < r.offset, "service %d: x-stream-offset not increasing at message %d: %d then %d",
				i, j, got[max0(j-1)].offset, r.offset)
			check(!r.redelivered, "service %d got redelivered messages", i)
		}
		if first == nil {
			first = got
		}
		check(sameOffsets(got, first), "service %d saw other offsets than service 0 for the same messages", i)
	}

	// A fourth consumer replays from the timestamp (AMQP type T: amqp091-go encodes a
	// time.Time so): it gets the whole second batch, in order, starting at or before its
	// first message (chunk granularity) but not from the start.
	replayConn, replay := consumer("replay", ts)
	c.waitFor(func() bool {
		r := replay.list()
		return len(r) > 0 && r[len(r)-1].body == bodies[n-1]
	}, "the replay to reach the last message", 300*time.Millisecond)
	rgot := replay.list()
	k := -1
	for i, b := range bodies {
		if b == rgot[0].body {
			k = i
			break
		}
	}
	check(k >= 0, "the replay started with %q", rgot[0].body)
	check(0 < k && k <= n1, "the replay from %d (between the batches) started at message %d (offset %d),"+
		" expected the second batch's first (%d) or a few before it, not the start", ts.Unix(), k, rgot[0].offset, n1)
	check(sameStrings(recordBodies(rgot), bodies[k:]), "the replay got %d messages from message %d, not the stream's tail",
		len(rgot), k)
	check(sameOffsets(rgot, first[k:]), "the replay's x-stream-offset headers differ from the services'")

	for _, s := range services {
		_ = s.conn.Close()
	}
	_ = replayConn.Close()
	_ = pconn.Close()
	_, err = sch.QueueDelete(q, false, false, false)
	must(err, "delete the stream "+q)
	for i, x := range c.queues {
		if x == q {
			c.queues = append(c.queues[:i], c.queues[i+1:]...)
			break
		}
	}
	_, err = c.channel(setup).QueueDeclarePassive(q, false, false, false, false, nil)
	check(err != nil, "the stream %s still exists after queue.delete", q)
	aerr, ok = err.(*amqp.Error)
	check(ok && aerr.Code == 404, "passive declare after delete: %v, expected 404", err)
}

func max0(i int) int {
	if i < 0 {
		return 0
	}
	return i
}
