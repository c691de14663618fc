(module
  ;; An ABI v1 guest must not import anything.
  (import "env" "clock_ms" (func $clock (result i64)))
  (memory (export "memory") 1)
)
