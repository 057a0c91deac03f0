package exeinfo

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// returnsX86 returns the offsets in code, an x86-64 function's body, of
// its return instructions. Instructions are decoded in sequence from the
// entry; Go puts no data in its functions, so an undecodable byte means the
// boundaries are wrong and any offset found could split an instruction:
// that is an error rather than a guess.
func returnsX86(code []byte) ([]int, error) {
	var rets []int
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil || inst.Len == 0 {
			// Trailing padding (INT3, 0xcc) decodes; anything else here is
			// not code we understand.
			return nil, fmt.Errorf("decoding x86-64 at +%#x (byte %#02x): %v", pc, code[pc], err)
		}
		if inst.Op == x86asm.RET {
			rets = append(rets, pc)
		}
		pc += inst.Len
	}
	return rets, nil
}

// returnsARM64 returns the offsets in code, an arm64 function's body, of
// its RET instructions. Instructions are 4 bytes, aligned and
// little-endian, so a RET is found by its encoding alone (RET Xn:
// 0xd65f0000 | n<<5, the form arm64asm decodes as RET) without a
// disassembler, whose tables weighed more in the recorder than everything
// else this package needs; a literal-pool word that happens to match would
// match a disassembler too.
func returnsARM64(code []byte) []int {
	const retMask, retBits = 0xfffffc1f, 0xd65f0000
	var rets []int
	for pc := 0; pc+4 <= len(code); pc += 4 {
		if binary.LittleEndian.Uint32(code[pc:])&retMask == retBits {
			rets = append(rets, pc)
		}
	}
	return rets
}
