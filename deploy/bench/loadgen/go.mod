module shadowtap/bench/loadgen

go 1.21
