package sx

// Adapters for the C objects that bindings/sextant.i does not declare as handle
// classes (yet): package sextant goes through these, so that only this file changes
// when it does.

// RecordsOf is the sx_records * p as the generated functions take it.
func RecordsOf(p uintptr) Struct_SS_sx_records { return SwigcptrStruct_SS_sx_records(p) }

// FreeRecords frees the sx_records * p (0 is a no-op).
func FreeRecords(p uintptr) { Sx_records_free(SwigcptrStruct_SS_sx_records(p)) }

// CursorOf is the sx_cursor * p as the generated functions take it.
func CursorOf(p uintptr) Struct_SS_sx_cursor { return SwigcptrStruct_SS_sx_cursor(p) }

// FreeCursor frees the sx_cursor * p (0 is a no-op).
func FreeCursor(p uintptr) { Sx_cursor_free(SwigcptrStruct_SS_sx_cursor(p)) }
