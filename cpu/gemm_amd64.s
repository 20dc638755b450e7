#include "textflag.h"

// The micro-kernels keep an mr×nr tile of c in registers, two vectors per
// row, and for each of k steps load one row of the b strip and broadcast each
// value of one column of the a strip. See gemmKernel in gemm.go.

// AVX2: a 6×16 tile in Y4…Y15; Y0, Y1 hold the b row, Y2, Y3 the broadcasts.
#define ROW6(off, bc, c0, c1) \
	VBROADCASTSS off(SI), bc; \
	VFMADD231PS  Y0, bc, c0; \
	VFMADD231PS  Y1, bc, c1

// c row = alpha·acc + c row (alpha in Y0), then on to the next row.
#define LOAD6(c0, c1) \
	VFMADD213PS (DX), Y0, c0;   \
	VFMADD213PS 32(DX), Y0, c1; \
	VMOVUPS     c0, (DX);       \
	VMOVUPS     c1, 32(DX);     \
	ADDQ        R8, DX

// c row = alpha·acc, then on to the next row.
#define STORE6(c0, c1) \
	VMULPS  Y0, c0, c0;   \
	VMULPS  Y0, c1, c1;   \
	VMOVUPS c0, (DX);     \
	VMOVUPS c1, 32(DX);   \
	ADDQ    R8, DX

// func gemmKernel6x16(k int, a, b, c []float32, ldc int, alpha float32, load bool)
TEXT ·gemmKernel6x16(SB), NOSPLIT, $0-93
	MOVQ k+0(FP), CX
	MOVQ a_base+8(FP), SI
	MOVQ b_base+32(FP), DI
	MOVQ c_base+56(FP), DX
	MOVQ ldc+80(FP), R8
	SHLQ $2, R8
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	TESTQ  CX, CX
	JEQ    k6done

k6loop:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	ROW6(0, Y2, Y4, Y5)
	ROW6(4, Y3, Y6, Y7)
	ROW6(8, Y2, Y8, Y9)
	ROW6(12, Y3, Y10, Y11)
	ROW6(16, Y2, Y12, Y13)
	ROW6(20, Y3, Y14, Y15)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  k6loop

k6done:
	VBROADCASTSS alpha+88(FP), Y0
	CMPB         load+92(FP), $0
	JEQ          k6store
	LOAD6(Y4, Y5)
	LOAD6(Y6, Y7)
	LOAD6(Y8, Y9)
	LOAD6(Y10, Y11)
	LOAD6(Y12, Y13)
	LOAD6(Y14, Y15)
	VZEROUPPER
	RET

k6store:
	STORE6(Y4, Y5)
	STORE6(Y6, Y7)
	STORE6(Y8, Y9)
	STORE6(Y10, Y11)
	STORE6(Y12, Y13)
	STORE6(Y14, Y15)
	VZEROUPPER
	RET

// AVX-512: a 14×32 tile in Z4…Z31; Z0, Z1 hold the b row, Z2, Z3 the
// broadcasts.
#define ROW14(off, bc, c0, c1) \
	VBROADCASTSS off(SI), bc; \
	VFMADD231PS  Z0, bc, c0; \
	VFMADD231PS  Z1, bc, c1

#define LOAD14(c0, c1) \
	VFMADD213PS (DX), Z0, c0;   \
	VFMADD213PS 64(DX), Z0, c1; \
	VMOVUPS     c0, (DX);       \
	VMOVUPS     c1, 64(DX);     \
	ADDQ        R8, DX

#define STORE14(c0, c1) \
	VMULPS  Z0, c0, c0;   \
	VMULPS  Z0, c1, c1;   \
	VMOVUPS c0, (DX);     \
	VMOVUPS c1, 64(DX);   \
	ADDQ    R8, DX

// func gemmKernel14x32(k int, a, b, c []float32, ldc int, alpha float32, load bool)
TEXT ·gemmKernel14x32(SB), NOSPLIT, $0-93
	MOVQ   k+0(FP), CX
	MOVQ   a_base+8(FP), SI
	MOVQ   b_base+32(FP), DI
	MOVQ   c_base+56(FP), DX
	MOVQ   ldc+80(FP), R8
	SHLQ   $2, R8
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31
	TESTQ  CX, CX
	JEQ    k14done

k14loop:
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	ROW14(0, Z2, Z4, Z5)
	ROW14(4, Z3, Z6, Z7)
	ROW14(8, Z2, Z8, Z9)
	ROW14(12, Z3, Z10, Z11)
	ROW14(16, Z2, Z12, Z13)
	ROW14(20, Z3, Z14, Z15)
	ROW14(24, Z2, Z16, Z17)
	ROW14(28, Z3, Z18, Z19)
	ROW14(32, Z2, Z20, Z21)
	ROW14(36, Z3, Z22, Z23)
	ROW14(40, Z2, Z24, Z25)
	ROW14(44, Z3, Z26, Z27)
	ROW14(48, Z2, Z28, Z29)
	ROW14(52, Z3, Z30, Z31)
	ADDQ $56, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  k14loop

k14done:
	VBROADCASTSS alpha+88(FP), Z0
	CMPB         load+92(FP), $0
	JEQ          k14store
	LOAD14(Z4, Z5)
	LOAD14(Z6, Z7)
	LOAD14(Z8, Z9)
	LOAD14(Z10, Z11)
	LOAD14(Z12, Z13)
	LOAD14(Z14, Z15)
	LOAD14(Z16, Z17)
	LOAD14(Z18, Z19)
	LOAD14(Z20, Z21)
	LOAD14(Z22, Z23)
	LOAD14(Z24, Z25)
	LOAD14(Z26, Z27)
	LOAD14(Z28, Z29)
	LOAD14(Z30, Z31)
	VZEROUPPER
	RET

k14store:
	STORE14(Z4, Z5)
	STORE14(Z6, Z7)
	STORE14(Z8, Z9)
	STORE14(Z10, Z11)
	STORE14(Z12, Z13)
	STORE14(Z14, Z15)
	STORE14(Z16, Z17)
	STORE14(Z18, Z19)
	STORE14(Z20, Z21)
	STORE14(Z22, Z23)
	STORE14(Z24, Z25)
	STORE14(Z26, Z27)
	STORE14(Z28, Z29)
	STORE14(Z30, Z31)
	VZEROUPPER
	RET

// func dots4AVX2(k int, x, m []float32, ld int, s []float32)
// Sets s[r] = x[:k]·m[r*ld : r*ld+k] for r < 4; k is a multiple of 8. Two
// sets of four accumulators (Y0…Y3, Y4…Y7) take alternate 8-float steps.
TEXT ·dots4AVX2(SB), NOSPLIT, $0-88
	MOVQ   k+0(FP), CX
	MOVQ   x_base+8(FP), SI
	MOVQ   m_base+32(FP), R8
	MOVQ   ld+56(FP), BX
	MOVQ   s_base+64(FP), DI
	SHLQ   $2, BX
	LEAQ   (R8)(BX*1), R9
	LEAQ   (R9)(BX*1), R10
	LEAQ   (R10)(BX*1), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   AX, AX

dots16:
	LEAQ        16(AX), DX
	CMPQ        DX, CX
	JGT         dots8
	VMOVUPS     (SI)(AX*4), Y8
	VMOVUPS     32(SI)(AX*4), Y9
	VFMADD231PS (R8)(AX*4), Y8, Y0
	VFMADD231PS (R9)(AX*4), Y8, Y1
	VFMADD231PS (R10)(AX*4), Y8, Y2
	VFMADD231PS (R11)(AX*4), Y8, Y3
	VFMADD231PS 32(R8)(AX*4), Y9, Y4
	VFMADD231PS 32(R9)(AX*4), Y9, Y5
	VFMADD231PS 32(R10)(AX*4), Y9, Y6
	VFMADD231PS 32(R11)(AX*4), Y9, Y7
	MOVQ        DX, AX
	JMP         dots16

dots8:
	CMPQ        AX, CX
	JGE         dotsReduce
	VMOVUPS     (SI)(AX*4), Y8
	VFMADD231PS (R8)(AX*4), Y8, Y0
	VFMADD231PS (R9)(AX*4), Y8, Y1
	VFMADD231PS (R10)(AX*4), Y8, Y2
	VFMADD231PS (R11)(AX*4), Y8, Y3

dotsReduce:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	// Y0 = [r0 r1 r0 r1 …] pairs, then one horizontal step per row pair.
	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, (DI)
	VZEROUPPER
	RET

// func axpyAVX2(alpha float32, x, y []float32)
// Adds alpha·x to y[:len(x)].
TEXT ·axpyAVX2(SB), NOSPLIT, $0-56
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ         x_base+8(FP), SI
	MOVQ         x_len+16(FP), CX
	MOVQ         y_base+32(FP), DI
	XORQ         AX, AX

axpy32:
	LEAQ        32(AX), DX
	CMPQ        DX, CX
	JGT         axpy8
	VMOVUPS     (DI)(AX*4), Y1
	VMOVUPS     32(DI)(AX*4), Y2
	VMOVUPS     64(DI)(AX*4), Y3
	VMOVUPS     96(DI)(AX*4), Y4
	VFMADD231PS (SI)(AX*4), Y0, Y1
	VFMADD231PS 32(SI)(AX*4), Y0, Y2
	VFMADD231PS 64(SI)(AX*4), Y0, Y3
	VFMADD231PS 96(SI)(AX*4), Y0, Y4
	VMOVUPS     Y1, (DI)(AX*4)
	VMOVUPS     Y2, 32(DI)(AX*4)
	VMOVUPS     Y3, 64(DI)(AX*4)
	VMOVUPS     Y4, 96(DI)(AX*4)
	MOVQ        DX, AX
	JMP         axpy32

axpy8:
	LEAQ        8(AX), DX
	CMPQ        DX, CX
	JGT         axpy1
	VMOVUPS     (DI)(AX*4), Y1
	VFMADD231PS (SI)(AX*4), Y0, Y1
	VMOVUPS     Y1, (DI)(AX*4)
	MOVQ        DX, AX
	JMP         axpy8

axpy1:
	CMPQ        AX, CX
	JGE         axpyDone
	VMOVSS      (DI)(AX*4), X1
	VFMADD231SS (SI)(AX*4), X0, X1
	VMOVSS      X1, (DI)(AX*4)
	INCQ        AX
	JMP         axpy1

axpyDone:
	VZEROUPPER
	RET

// func transpose8AVX2(kb int, src []float32, ld int, dst []float32, ldd int)
// For p < kb (a multiple of 8) and r < 8, sets dst[p*ldd+r] = src[r*ld+p]:
// eight rows of src become eight columns of dst, one 8×8 block at a time.
TEXT ·transpose8AVX2(SB), NOSPLIT, $0-72
	MOVQ kb+0(FP), CX
	SHRQ $3, CX
	JEQ  transDone
	MOVQ src_base+8(FP), SI
	MOVQ ld+32(FP), R8
	MOVQ dst_base+40(FP), DI
	MOVQ ldd+64(FP), R11
	SHLQ $2, R8
	SHLQ $2, R11
	LEAQ (R8)(R8*2), R9   // 3 rows of src
	LEAQ (SI)(R8*4), R10  // row 4 of src
	LEAQ (R11)(R11*2), R12 // 3 rows of dst
	LEAQ (DI)(R11*4), R13 // row 4 of dst

transLoop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R8*1), Y1
	VMOVUPS (SI)(R8*2), Y2
	VMOVUPS (SI)(R9*1), Y3
	VMOVUPS (R10), Y4
	VMOVUPS (R10)(R8*1), Y5
	VMOVUPS (R10)(R8*2), Y6
	VMOVUPS (R10)(R9*1), Y7

	// Pairs of rows interleaved: Y8 = a0 b0 a1 b1 | a4 b4 a5 b5, …
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	// Four rows per column: Y0 = a0 b0 c0 d0 | a4 b4 c4 d4, …
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	// Halves joined: columns 0…3 from the low halves, 4…7 from the high.
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS    Y8, (DI)
	VMOVUPS    Y9, (DI)(R11*1)
	VMOVUPS    Y10, (DI)(R11*2)
	VMOVUPS    Y11, (DI)(R12*1)
	VMOVUPS    Y12, (R13)
	VMOVUPS    Y13, (R13)(R11*1)
	VMOVUPS    Y14, (R13)(R11*2)
	VMOVUPS    Y15, (R13)(R12*1)

	ADDQ $32, SI
	ADDQ $32, R10
	LEAQ (DI)(R11*8), DI
	LEAQ (R13)(R11*8), R13
	DECQ CX
	JNZ  transLoop

transDone:
	VZEROUPPER
	RET

// One step of dots4x4AVX512: row i of a (in Z16…Z19) times row j of b, loaded
// into bj, accumulates into Z(4i+j).
#define DOTCOL(bptr, bj, c0, c1, c2, c3) \
	VMOVUPS     (bptr)(AX*1), bj; \
	VFMADD231PS bj, Z16, c0;      \
	VFMADD231PS bj, Z17, c1;      \
	VFMADD231PS bj, Z18, c2;      \
	VFMADD231PS bj, Z19, c3

// Sums each of four accumulators c0…c3 (Z registers, low halves y0…y3) and
// stores the four sums at off(DX).
#define DOTSUM(c0, c1, c2, c3, y0, y1, y2, y3, x0, off) \
	VSHUFF32X4   $0x4E, c0, c0, Z16; \
	VADDPS       Z16, c0, c0;        \
	VSHUFF32X4   $0x4E, c1, c1, Z17; \
	VADDPS       Z17, c1, c1;        \
	VSHUFF32X4   $0x4E, c2, c2, Z18; \
	VADDPS       Z18, c2, c2;        \
	VSHUFF32X4   $0x4E, c3, c3, Z19; \
	VADDPS       Z19, c3, c3;        \
	VHADDPS      y1, y0, y0;         \
	VHADDPS      y3, y2, y2;         \
	VHADDPS      y2, y0, y0;         \
	VEXTRACTF128 $1, y0, X1;         \
	VADDPS       X1, x0, x0;         \
	VMOVUPS      x0, off(DX)

// func dots4x4AVX512(k int, a []float32, lda int, b []float32, ldb int, s []float32)
// Sets s[4*i+j] = a[i*lda : i*lda+k] · b[j*ldb : j*ldb+k] for i, j < 4; k is
// a multiple of 16. The sixteen sums are kept in Z0…Z15.
TEXT ·dots4x4AVX512(SB), NOSPLIT, $0-96
	MOVQ k+0(FP), CX
	SHLQ $2, CX
	MOVQ a_base+8(FP), SI
	MOVQ lda+32(FP), BX
	SHLQ $2, BX
	LEAQ (SI)(BX*1), R8
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	MOVQ b_base+40(FP), DI
	MOVQ ldb+64(FP), BX
	SHLQ $2, BX
	LEAQ (DI)(BX*1), R11
	LEAQ (R11)(BX*1), R12
	LEAQ (R12)(BX*1), R13
	MOVQ s_base+72(FP), DX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	XORQ   AX, AX
	TESTQ  CX, CX
	JEQ    dots4x4Sum

dots4x4Loop:
	VMOVUPS (SI)(AX*1), Z16
	VMOVUPS (R8)(AX*1), Z17
	VMOVUPS (R9)(AX*1), Z18
	VMOVUPS (R10)(AX*1), Z19
	DOTCOL(DI, Z20, Z0, Z4, Z8, Z12)
	DOTCOL(R11, Z21, Z1, Z5, Z9, Z13)
	DOTCOL(R12, Z22, Z2, Z6, Z10, Z14)
	DOTCOL(R13, Z23, Z3, Z7, Z11, Z15)
	ADDQ $64, AX
	CMPQ AX, CX
	JLT  dots4x4Loop

dots4x4Sum:
	DOTSUM(Z0, Z1, Z2, Z3, Y0, Y1, Y2, Y3, X0, 0)
	DOTSUM(Z4, Z5, Z6, Z7, Y4, Y5, Y6, Y7, X4, 16)
	DOTSUM(Z8, Z9, Z10, Z11, Y8, Y9, Y10, Y11, X8, 32)
	DOTSUM(Z12, Z13, Z14, Z15, Y12, Y13, Y14, Y15, X12, 48)
	VZEROUPPER
	RET
