// The source of every placeholder library (worker/torch_placeholders.h):
// nothing. worker/torch_placeholders.cmake builds it once per soname it
// stands in for, without the C library, so a placeholder defines no symbol,
// needs no library and runs no code.
