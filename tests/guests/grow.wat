(module
  ;; Sandbox test guest "grow": answers op 0 (capabilities) with {"ok":"pong"}
  ;; and misbehaves on any other op.
  (memory (export "memory") 17)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 16) "{\"abi\":1,\"core_version\":\"0.0.0-test\",\"modules\":{\"compat\":\"compat/test\"},\"sse_protocol\":\"sse/1\",\"ops\":[\"capabilities\",\"routing.resolve\"],\"features\":[]}")
  (data (i32.const 1024) "{\"ok\":\"pong\"}")
  (func (export "sg_abi_version") (result i32) (i32.const 1))
  (func (export "sg_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (local.get $p))
  (func (export "sg_free") (param i32 i32))
  (func (export "sg_capabilities") (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 150)))
  (func (export "sg_call") (param $op i32) (param $ptr i32) (param $len i32) (result i64)
    (if (i32.eqz (local.get $op))
      (then (return (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 13)))))
    ;; Grow until refused, then abort as Rust's allocator does.
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (unreachable)
  )
)
