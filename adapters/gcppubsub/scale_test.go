//go:build !integration

package gcppubsub_test

// conformanceScale keeps the untagged run quick: pstest is slow (see TestConformance).
const conformanceScale = 0.2
