import MimicCore

/// How strictly the Linux emulator follows the kernel where other emulators did not.
public enum LinuxCompatibility: String, Sendable, CaseIterable {
    /// The kernel's rules (the default): what the kernel refuses, Mimic refuses.
    case kernel
    /// Also load the map definitions the Go mimic (and edb's examples) accept though the kernel
    /// refuses them, each with a warning naming the kernel rule it breaks (`LinuxEmulator
    /// .compatibilityWarnings`): queue and stack maps with a non-zero `key_size` (loaded with 0),
    /// perf event arrays with a `value_size` other than 4 (loaded with 4), and maps of maps
    /// without an inner map definition (which then accept any map that may be an inner map).
    case goMimic = "go-mimic"
}

extension LinuxEmulator {
    /// The attributes to create under `configuration.compatibility`, and the warnings for what
    /// was relaxed. Under `.kernel`, `attributes` unchanged and no warnings.
    func relaxedForCompatibility(_ attributes: MapAttributes) -> (MapAttributes, [String]) {
        guard configuration.compatibility == .goMimic else { return (attributes, []) }
        var relaxed = attributes
        var warnings: [String] = []
        let map = "map \(attributes.name) (\(attributes.type.cName))"
        let type = attributes.type
        if type == .queue || type == .stack, attributes.keySize != 0 {
            warnings.append(
                "\(map): key_size \(attributes.keySize) breaks the kernel's rule key_size == 0 (queue_stack_map_alloc_check); loaded with key_size 0"
            )
            relaxed.keySize = 0
        }
        if type == .perfEventArray, attributes.valueSize != 4 {
            warnings.append(
                "\(map): value_size \(attributes.valueSize) breaks the kernel's rule value_size == 4 (array_map_alloc_check for fd arrays); loaded with value_size 4"
            )
            relaxed.valueSize = 4
        }
        if type == .arrayOfMaps || type == .hashOfMaps, attributes.innerMap == nil {
            warnings.append(
                "\(map): no inner map definition breaks the kernel's rule that a map of maps has one (bpf_map_meta_alloc); loaded accepting any map that may be an inner map"
            )
        }
        return (relaxed, warnings)
    }

    /// Whether a map of maps without an inner definition (loaded under `.goMimic`) may hold
    /// `map`: any map but maps of maps, prog arrays and perf event arrays (the kernel's
    /// `bpf_map_meta_alloc` refuses those as inner maps).
    func acceptsWithoutInnerDefinition(_ map: any BPFMap) -> Bool {
        guard configuration.compatibility == .goMimic else { return false }
        switch map.attributes.type {
        case .arrayOfMaps, .hashOfMaps, .progArray, .perfEventArray: return false
        default: return true
        }
    }
}
