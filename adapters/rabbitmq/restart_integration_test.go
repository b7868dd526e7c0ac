//go:build integration

package rabbitmq_test

import (
	"testing"
	"time"

	"github.com/courierhq/courier/integration/brokers"
)

// TestBrokerRestart publishes 10,000 messages while the broker is stopped and started
// (rabbitmqctl stop_app / start_app) at a third and at a half of the way, consuming all the
// while. Every confirmed message must be delivered at least once; duplicates are counted.
func TestBrokerRestart(t *testing.T) {
	url := endpoint(t)
	brokers.RequireControl(t, brokers.RabbitMQ)
	faultRun{
		n:       10000,
		batch:   200,
		pubURL:  url,
		subURL:  url,
		timeout: 3 * time.Minute,
		pace:    true,
		fault: func(t *testing.T, k int) {
			time.Sleep(5 * time.Millisecond) // mid-batch
			brokers.StopService(t, brokers.RabbitMQ)
			time.Sleep(time.Second)
			brokers.StartService(t, brokers.RabbitMQ)
		},
	}.run(t)
}
