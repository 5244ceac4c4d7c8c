/*
 * custom_insn — a sample Mimic plugin in C with custom instructions (plugin ABI 1.2): two
 * vendor instructions on opcode bytes the eBPF instruction set leaves undefined, as the Go
 * mimic's Emulator.CustomInstruction allows.
 *
 *   0xf7  popcnt dst, src, imm     dst = popcount(src) + imm
 *   0xfe  stinv [dst+off], imm     *(u32 *)(dst + off) = ~imm
 *
 * The loader asks the plugin only about undefined opcodes: every other invalid slot is still
 * refused. A bad address stops the program with an error naming the instruction (the plugin
 * passes the status of host->write to host->fail).
 *
 * Build: ./build.sh (uses the toolchain's clang; see Docs/Plugins.md). Try it:
 *   printf 'b7010000ff000000 f711000064000000 bf10000000000000 9500000000000000' > popcnt.hex
 *   mimic run-raw popcnt.hex --plugin ./libcustom_insn.so      # r0 = 108
 */
#include "mimic_plugin.h"

#include <stddef.h>

static void popcnt(const struct mimic_host *host, struct mimic_call *call, const struct mimic_instruction *insn) {
    uint64_t value = host->get_register(call, insn->src_reg);
    uint64_t result = (uint64_t)__builtin_popcountll(value) + (uint64_t)(int64_t)insn->imm;
    int32_t status = host->set_register(call, insn->dst_reg, result);
    if (status != MIMIC_OK) host->fail(call, status, "popcnt: cannot set the destination register");
}

static void stinv(const struct mimic_host *host, struct mimic_call *call, const struct mimic_instruction *insn) {
    uint64_t address = host->get_register(call, insn->dst_reg) + (uint64_t)(int64_t)insn->off;
    uint32_t value = ~(uint32_t)insn->imm;
    int32_t status = host->write(call, address, &value, sizeof value);
    if (status != MIMIC_OK) host->fail(call, status, "stinv: cannot store");
}

static const struct mimic_custom_instruction instructions[] = {
    {.opcode = 0xf7, .name = "vendor.popcnt", .function = popcnt},
    {.opcode = 0xfe, .name = "vendor.stinv", .function = stinv},
};

static const struct mimic_plugin plugin = {
    .abi_major = MIMIC_PLUGIN_ABI_MAJOR,
    .abi_minor = MIMIC_PLUGIN_ABI_MINOR,
    .size = sizeof(struct mimic_plugin),
    .name = "custom_insn",
    .version = "1.0",
    .description = "Vendor instructions popcnt (0xf7) and stinv (0xfe)",
    .custom_instruction_count = sizeof instructions / sizeof instructions[0],
    .custom_instructions = instructions,
};

__attribute__((visibility("default")))
const struct mimic_plugin *mimic_plugin_entry(const struct mimic_host *host) {
    if (host->abi_major != MIMIC_PLUGIN_ABI_MAJOR) return NULL;
    return &plugin;
}
