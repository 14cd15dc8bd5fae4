module slow

go 1.24
