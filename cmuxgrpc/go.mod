module github.com/cmux-go/cmux/cmuxgrpc

go 1.26.0

replace github.com/cmux-go/cmux => ../
