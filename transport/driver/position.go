package driver

// LogPosition is a received message's place in a partitioned log. Adapters of log brokers
// (Kafka) fill it through message.Message.As, so that code above the adapter (tracing, say)
// can read the partition and offset without importing the broker's client:
//
//	var pos driver.LogPosition
//	if m.As(&pos) { … pos.Partition, pos.Offset … }
type LogPosition struct {
	// Partition is the partition the message was read from.
	Partition int
	// Offset is the message's offset in its partition.
	Offset int64
}
