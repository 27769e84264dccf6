module github.com/cmux-go/cmux/cmuxgrpc

go 1.26.0

require google.golang.org/grpc v1.85.0

require google.golang.org/protobuf v1.36.12 // indirect

replace github.com/cmux-go/cmux => ../
