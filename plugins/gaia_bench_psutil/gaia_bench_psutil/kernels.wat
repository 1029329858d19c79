;; The compute kernels behind the CPU scores, run in wasmtime as tasks are.
;;
;; matmul(n, reps)  -> C = A x B on n x n f32 matrices (row-major, A at 0,
;;                     B at 4n^2, C at 8n^2), 128-bit SIMD, repeated reps
;;                     times: 2 n^3 reps floating-point operations.
;; intmix(iters)    -> an LCG / xorshift / rotate chain over i32: 8 integer
;;                     operations per iteration, returned so nothing is dead.
;; copy(dst, src, len, reps) -> memory.copy of len bytes, reps times
;;                     (STREAM "Copy": 2 len reps bytes moved).
;; fill(dst, byte, len) -> memory.fill, so every page is touched and nonzero
;;                     before timing (no first-touch faults, no shared zero page).
(module
  (memory (export "memory") 1)

  (func (export "matmul") (param $n i32) (param $reps i32)
    (local $a i32) (local $b i32) (local $c i32) (local $row i32)
    (local $i i32) (local $k i32) (local $j i32) (local $r i32)
    (local $aik v128) (local $bk i32) (local $ci i32)
    (local.set $row (i32.shl (local.get $n) (i32.const 2)))
    (local.set $a (i32.const 0))
    (local.set $b (i32.mul (local.get $row) (local.get $n)))
    (local.set $c (i32.shl (local.get $b) (i32.const 1)))
    (local.set $r (i32.const 0))
    (block $rdone (loop $rloop
      (br_if $rdone (i32.ge_u (local.get $r) (local.get $reps)))
      (local.set $i (i32.const 0))
      (block $idone (loop $iloop
        (br_if $idone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $ci (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $row))))
        ;; zero row i of C
        (local.set $j (i32.const 0))
        (block $zdone (loop $zloop
          (br_if $zdone (i32.ge_u (local.get $j) (local.get $row)))
          (v128.store (i32.add (local.get $ci) (local.get $j)) (v128.const i32x4 0 0 0 0))
          (local.set $j (i32.add (local.get $j) (i32.const 16)))
          (br $zloop)))
        (local.set $k (i32.const 0))
        (block $kdone (loop $kloop
          (br_if $kdone (i32.ge_u (local.get $k) (local.get $n)))
          (local.set $aik (f32x4.splat (f32.load
            (i32.add (local.get $a)
              (i32.add (i32.mul (local.get $i) (local.get $row)) (i32.shl (local.get $k) (i32.const 2)))))))
          (local.set $bk (i32.add (local.get $b) (i32.mul (local.get $k) (local.get $row))))
          ;; C[i, j..j+8] += A[i,k] * B[k, j..j+8], two vectors per step
          (local.set $j (i32.const 0))
          (block $jdone (loop $jloop
            (br_if $jdone (i32.ge_u (local.get $j) (local.get $row)))
            (v128.store (i32.add (local.get $ci) (local.get $j))
              (f32x4.add (v128.load (i32.add (local.get $ci) (local.get $j)))
                (f32x4.mul (local.get $aik) (v128.load (i32.add (local.get $bk) (local.get $j))))))
            (v128.store offset=16 (i32.add (local.get $ci) (local.get $j))
              (f32x4.add (v128.load offset=16 (i32.add (local.get $ci) (local.get $j)))
                (f32x4.mul (local.get $aik) (v128.load offset=16 (i32.add (local.get $bk) (local.get $j))))))
            (local.set $j (i32.add (local.get $j) (i32.const 32)))
            (br $jloop)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br $kloop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $iloop)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rloop))))

  (func (export "intmix") (param $iters i32) (result i32)
    (local $x i32) (local $y i32) (local $i i32)
    (local.set $x (i32.const 12345))
    (local.set $y (i32.const 67890))
    (block $done (loop $loop
      (br_if $done (i32.ge_u (local.get $i) (local.get $iters)))
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1664525)) (i32.const 1013904223)))
      (local.set $y (i32.xor (local.get $y) (i32.shr_u (local.get $x) (i32.const 13))))
      (local.set $y (i32.add (i32.rotl (local.get $y) (i32.const 5)) (local.get $x)))
      (local.set $y (i32.xor (local.get $y) (i32.shl (local.get $y) (i32.const 7))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $loop)))
    (i32.xor (local.get $x) (local.get $y)))

  (func (export "copy") (param $dst i32) (param $src i32) (param $len i32) (param $reps i32)
    (local $r i32)
    (block $done (loop $loop
      (br_if $done (i32.ge_u (local.get $r) (local.get $reps)))
      (memory.copy (local.get $dst) (local.get $src) (local.get $len))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $loop))))

  (func (export "fill") (param $dst i32) (param $byte i32) (param $len i32)
    (memory.fill (local.get $dst) (local.get $byte) (local.get $len))))
