package sqs

import "github.com/aws/aws-sdk-go-v2/aws"

// WithPrivateBodies wraps c in the adapter's workaround for aws-sdk-go-v2#2737 (see
// privateBodies), for the raw-client benchmarks: both clients are then measured without the
// SDK's occasional 30 s receive stalls, which otherwise decide the raw consume figure.
func WithPrivateBodies(c aws.HTTPClient) aws.HTTPClient { return privateBodies{c} }
