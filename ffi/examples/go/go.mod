module ssekit.example/objgo

go 1.19
