module warren.invalid/interop

go 1.19

// amqp091-go comes from Debian's golang-github-rabbitmq-amqp091-go-dev (no
// module proxy): interop/run.sh builds with GOPROXY=off and this replace.
require github.com/rabbitmq/amqp091-go v1.5.0

replace github.com/rabbitmq/amqp091-go => /usr/share/gocode/src/github.com/rabbitmq/amqp091-go
