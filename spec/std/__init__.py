# Makes spec/std installable as package data (`dlc.stdlib`) so `import "std/..."` works
# from any working directory. The library itself is the .arch files beside this one.
