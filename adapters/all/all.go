// Package all links every Courier adapter into a program, so that transport.Open accepts
// each of their URL schemes: import it for its side effect.
//
//	import _ "github.com/courierhq/courier/adapters/all"
//
// Programs that need only one broker import that adapter instead and stay smaller.
package all

import (
	_ "github.com/courierhq/courier/adapters/gcppubsub" // gcppubsub://
	_ "github.com/courierhq/courier/adapters/kafka"     // kafka://
	_ "github.com/courierhq/courier/adapters/memory"    // memory://
	_ "github.com/courierhq/courier/adapters/rabbitmq"  // amqp://, amqps://
	_ "github.com/courierhq/courier/adapters/sqs"       // sqs://
)
