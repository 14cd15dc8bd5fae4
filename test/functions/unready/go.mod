module unready

go 1.24
