module github.com/sextant/sextant/bindings/go

go 1.24
