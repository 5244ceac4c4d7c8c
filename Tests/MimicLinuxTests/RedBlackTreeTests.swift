import Testing
@testable import MimicLinux
import MimicTestSupport

/// `RedBlackTree` against red-black trees derived by hand from `lib/rbtree.c`'s cases, and its
/// invariants over many random operations.
struct RedBlackTreeTests {
    /// The tree written as `key colour (left, right)`, `-` for no child: nodes are the addresses
    /// `0x1000 * key`, so a key is the address over 0x1000.
    static func shape(_ tree: RedBlackTree) -> String {
        func describe(_ node: UInt64) -> String {
            guard node != 0 else { return "-" }
            let name = "\(node / 0x1000)\(tree.isBlack(node) ? "B" : "R")"
            let (left, right) = (tree.left(of: node), tree.right(of: node))
            return left == 0 && right == 0 ? name : "\(name)(\(describe(left)),\(describe(right)))"
        }
        return describe(tree.root)
    }

    /// Inserts keys by address, ordered by the key (duplicates go after their equals).
    static func insert(_ keys: [UInt64], into tree: inout RedBlackTree, keyOf: [UInt64: UInt64]? = nil) {
        for key in keys {
            tree.insert(key * 0x1000) { a, b in (keyOf?[a] ?? a) < (keyOf?[b] ?? b) }
        }
    }

    @Test func ascendingInsertsRotateAsTheKernelDoes() {
        var tree = RedBlackTree()
        Self.insert([1], into: &tree)
        #expect(Self.shape(tree) == "1B")
        Self.insert([2], into: &tree)
        #expect(Self.shape(tree) == "1B(-,2R)")
        Self.insert([3], into: &tree) // case 3, mirrored: left rotate at 1
        #expect(Self.shape(tree) == "2B(1R,3R)")
        Self.insert([4], into: &tree) // case 1: colour flips up to the root
        #expect(Self.shape(tree) == "2B(1B,3B(-,4R))")
        Self.insert([5], into: &tree)
        #expect(Self.shape(tree) == "2B(1B,4B(3R,5R))")
        Self.insert([6], into: &tree)
        #expect(Self.shape(tree) == "2B(1B,4R(3B,5B(-,6R)))")
        Self.insert([7], into: &tree)
        #expect(Self.shape(tree) == "2B(1B,4R(3B,6B(5R,7R)))")
        Self.insert([8], into: &tree) // case 1 at 6, then case 3 at the root: 4 rises
        #expect(Self.shape(tree) == "4B(2R(1B,3B),6R(5B,7B(-,8R)))")
        #expect(tree.first == 0x1000)
        #expect(tree.inOrder.map { $0 / 0x1000 } == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func innerInsertsRotateTwice() {
        var tree = RedBlackTree()
        Self.insert([3, 1, 2], into: &tree) // case 2 (left rotate at 1), then case 3 at 3
        #expect(Self.shape(tree) == "2B(1R,3R)")
        var mirrored = RedBlackTree()
        Self.insert([1, 3, 2], into: &mirrored)
        #expect(Self.shape(mirrored) == "2B(1R,3R)")
    }

    @Test func equalNodesGoAfterTheirEquals() {
        var tree = RedBlackTree()
        // Nodes 1, 2, 3 all with key 5: each goes right of the ones before it.
        Self.insert([1, 2, 3], into: &tree, keyOf: [0x1000: 5, 0x2000: 5, 0x3000: 5])
        #expect(Self.shape(tree) == "2B(1R,3R)")
        #expect(tree.inOrder.map { $0 / 0x1000 } == [1, 2, 3])
    }

    @Test func removalsRebalanceAsTheKernelDoes() {
        var tree = RedBlackTree()
        func removing(_ node: UInt64) -> Bool { tree.remove(node) }
        Self.insert([1, 2, 3, 4, 5, 6, 7, 8], into: &tree)
        // The root has two children; its successor 5 is the leftmost under 6 (case 3), a black
        // leaf, so 6 rebalances: case 4 at 6 (7 rises, 8 turns black).
        #expect(removing(0x4000))
        #expect(Self.shape(tree) == "5B(2R(1B,3B),7R(6B,8B))")
        // A black leaf whose sibling has no red child and whose parent is red: case 2.
        #expect(removing(0x1000))
        #expect(Self.shape(tree) == "5B(2B(-,3R),7R(6B,8B))")
        #expect(removing(0x5000))
        #expect(Self.shape(tree) == "6B(2B(-,3R),7B(-,8R))")
        // One child: it takes the node's place and colour.
        #expect(removing(0x2000))
        #expect(Self.shape(tree) == "6B(3B,7B(-,8R))")
        #expect(!removing(0x2000))
        #expect(!removing(0x9000))
        for key: UInt64 in [6, 3, 7, 8] { #expect(removing(key * 0x1000)) }
        #expect(tree.isEmpty && tree.root == 0 && tree.first == 0 && tree.count == 0)
    }

    @Test func aRedSiblingRotatesFirst() {
        var tree = RedBlackTree()
        func removing(_ node: UInt64) -> Bool { tree.remove(node) }
        Self.insert([1, 2, 3, 4, 5, 6], into: &tree)
        #expect(Self.shape(tree) == "2B(1B,4R(3B,5B(-,6R)))")
        // 1's sibling 4 is red: case 1 (left rotate at 2), then 3's children are black: case 2
        // with 2 red, which turns black.
        #expect(removing(0x1000))
        #expect(Self.shape(tree) == "4B(2B(-,3R),5B(-,6R))")
    }

    @Test func linkRefusesWhatIsNotAFreeLeaf() {
        var tree = RedBlackTree()
        func linking(_ node: UInt64, under parent: UInt64, left: Bool) -> Bool {
            tree.link(node, under: parent, left: left)
        }
        #expect(linking(0x1000, under: 0, left: true))
        #expect(!linking(0x1000, under: 0, left: true)) // already in the tree
        #expect(!linking(0x2000, under: 0, left: true)) // the tree has a root
        #expect(!linking(0x2000, under: 0x3000, left: true)) // no such parent
        #expect(!linking(0, under: 0x1000, left: true)) // NULL is no node
        #expect(linking(0x2000, under: 0x1000, left: false))
        #expect(!linking(0x3000, under: 0x1000, left: false)) // that slot is taken
        #expect(Self.shape(tree) == "1B(-,2R)")
    }

    /// The red-black properties and the links' consistency; the black height of `node`.
    static func check(_ tree: RedBlackTree, _ node: UInt64, parent: UInt64) -> Int? {
        guard node != 0 else { return 1 }
        guard tree.parent(of: node) == parent else { return nil }
        let (left, right) = (tree.left(of: node), tree.right(of: node))
        if !tree.isBlack(node) && (!tree.isBlack(left) || !tree.isBlack(right)) { return nil }
        guard let leftHeight = check(tree, left, parent: node), let rightHeight = check(tree, right, parent: node),
            leftHeight == rightHeight
        else { return nil }
        return leftHeight + (tree.isBlack(node) ? 1 : 0)
    }

    @Test func randomOperationsKeepTheInvariantsAndTheOrder() {
        var random = SplitMix64(seed: 0x5EED_0F_7AEE)
        var tree = RedBlackTree()
        var keys: [UInt64: UInt64] = [:]
        var reference: [UInt64] = [] // nodes in order: by key, equal keys in insertion order
        var nextNode: UInt64 = 0x1000
        for step in 0..<6000 {
            if reference.isEmpty || random.next() % 5 < 3 {
                let node = nextNode
                nextNode += 0x40
                let key = random.next() % 500 // duplicates are frequent
                keys[node] = key
                let index = reference.firstIndex { keys[$0]! > key } ?? reference.count
                reference.insert(node, at: index)
                let inserted = tree.insert(node) { keys[$0]! < keys[$1]! }
                #expect(inserted)
            } else {
                let index = Int(random.next() % UInt64(reference.count))
                let removed = tree.remove(reference.remove(at: index))
                #expect(removed)
            }
            guard step % 7 == 0 || step > 5900 else { continue }
            #expect(tree.isBlack(tree.root), "step \(step): a red root")
            #expect(Self.check(tree, tree.root, parent: 0) != nil, "step \(step): \(Self.shape(tree))")
            #expect(tree.inOrder == reference, "step \(step)")
            #expect(tree.first == (reference.first ?? 0))
            #expect(tree.count == reference.count)
        }
    }
}
