module github.com/sextant/sextant/examples/go

go 1.24

require github.com/sextant/sextant/bindings/go v0.0.0

replace github.com/sextant/sextant/bindings/go => ../../bindings/go
