/// A red-black tree of nodes named by their address, shaped exactly as the kernel's
/// `lib/rbtree.c` shapes a `struct rb_root`: linking a node under a parent then recolouring and
/// rotating as `rb_insert_color` does, and erasing as `rb_erase` (`__rb_erase_augmented`, then
/// `____rb_erase_color`) does. The same operations in the same order therefore leave the same
/// root and the same children as in the kernel, which `bpf_rbtree_root`, `bpf_rbtree_left` and
/// `bpf_rbtree_right` expose.
///
/// The tree does not order anything itself: the caller finds where a node goes
/// (`insertionPoint(for:less:)`, the walk of `rb_add_cached` / `__bpf_rbtree_add`: left when
/// `less(node, parent)`, else right, so a node goes after the nodes equal to it) and links it
/// there (`link(_:under:left:)`). Address 0 is NULL and is never a node.
struct RedBlackTree: Sendable {
    /// One node's links (`struct rb_node`: `__rb_parent_color`, `rb_right`, `rb_left`).
    private struct Links: Sendable {
        var parent: UInt64
        var isBlack: Bool
        var left: UInt64 = 0
        var right: UInt64 = 0
    }

    /// `rb_root.rb_node`: the root node, 0 when the tree is empty.
    private(set) var root: UInt64 = 0
    private var links: [UInt64: Links] = [:]

    /// An empty tree.
    init() {}

    var isEmpty: Bool { root == 0 }
    var count: Int { links.count }
    func contains(_ node: UInt64) -> Bool { links[node] != nil }

    /// The node's left child, 0 for none (or for a node not in the tree).
    func left(of node: UInt64) -> UInt64 { links[node]?.left ?? 0 }
    /// The node's right child, 0 for none.
    func right(of node: UInt64) -> UInt64 { links[node]?.right ?? 0 }
    /// The node's parent, 0 for the root.
    func parent(of node: UInt64) -> UInt64 { links[node]?.parent ?? 0 }
    /// Whether the node is black; NULL leaves are black.
    func isBlack(_ node: UInt64) -> Bool { links[node]?.isBlack ?? true }

    /// The leftmost node (`rb_first`; what `rb_first_cached` keeps), 0 when empty.
    var first: UInt64 {
        var node = root
        while left(of: node) != 0 { node = left(of: node) }
        return node
    }

    /// The nodes in order (`rb_first` then `rb_next`).
    var inOrder: [UInt64] {
        var result: [UInt64] = []
        result.reserveCapacity(links.count)
        var stack: [UInt64] = []
        var node = root
        while node != 0 || !stack.isEmpty {
            while node != 0 {
                stack.append(node)
                node = left(of: node)
            }
            node = stack.removeLast()
            result.append(node)
            node = right(of: node)
        }
        return result
    }

    /// Where `node` is linked, walking down from the root as `__bpf_rbtree_add` does: to the
    /// left of each node it is `less` than, else to the right. `parent` is 0 for an empty tree.
    func insertionPoint<E: Error>(for node: UInt64, less: (UInt64, UInt64) throws(E) -> Bool) throws(E)
        -> (parent: UInt64, left: Bool)
    {
        var parent: UInt64 = 0
        var goesLeft = true
        var current = root
        while current != 0 {
            parent = current
            goesLeft = try less(node, current)
            current = goesLeft ? left(of: current) : right(of: current)
        }
        return (parent, goesLeft)
    }

    /// Links `node` (not in the tree) as a red leaf under `parent` (0: as the root of an empty
    /// tree) on the given side, as `rb_link_node`, then rebalances as `rb_insert_color`. False,
    /// changing nothing, when `node` is 0 or already in the tree, or the place is not a free leaf
    /// slot of the tree.
    @discardableResult
    mutating func link(_ node: UInt64, under parent: UInt64, left: Bool) -> Bool {
        guard node != 0, links[node] == nil else { return false }
        if parent == 0 {
            guard root == 0 else { return false }
            root = node
        } else {
            guard contains(parent), (left ? self.left(of: parent) : right(of: parent)) == 0 else { return false }
            if left { setLeft(parent, node) } else { setRight(parent, node) }
        }
        links[node] = Links(parent: parent, isBlack: false)
        insertColor(node)
        return true
    }

    /// Inserts `node` where `insertionPoint(for:less:)` puts it (`rb_add`).
    @discardableResult
    mutating func insert<E: Error>(_ node: UInt64, less: (UInt64, UInt64) throws(E) -> Bool) throws(E) -> Bool {
        let point = try insertionPoint(for: node, less: less)
        return link(node, under: point.parent, left: point.left)
    }

    /// Removes `node` as `rb_erase` does; false when it is not in the tree.
    @discardableResult
    mutating func remove(_ node: UInt64) -> Bool {
        guard contains(node) else { return false }
        if let rebalance = erase(node) { eraseColor(rebalance) }
        links[node] = nil
        return true
    }

    // MARK: - lib/rbtree.c

    private func isRed(_ node: UInt64) -> Bool { !isBlack(node) }
    private mutating func setLeft(_ node: UInt64, _ child: UInt64) { links[node]?.left = child }
    private mutating func setRight(_ node: UInt64, _ child: UInt64) { links[node]?.right = child }
    /// `rb_set_parent`: the parent, keeping the colour.
    private mutating func setParent(_ node: UInt64, _ parent: UInt64) { links[node]?.parent = parent }
    /// `rb_set_parent_color`.
    private mutating func setParentColor(_ node: UInt64, _ parent: UInt64, black: Bool) {
        links[node]?.parent = parent
        links[node]?.isBlack = black
    }
    private mutating func setBlack(_ node: UInt64) { links[node]?.isBlack = true }

    /// `__rb_change_child`: `parent`'s link to `old` (the root's when `parent` is 0) now names `new`.
    private mutating func changeChild(_ old: UInt64, _ new: UInt64, parent: UInt64) {
        if parent == 0 {
            root = new
        } else if left(of: parent) == old {
            setLeft(parent, new)
        } else {
            setRight(parent, new)
        }
    }

    /// `__rb_rotate_set_parents`: `new` takes `old`'s parent and colour and its place; `old` goes
    /// under `new` with the colour given.
    private mutating func rotateSetParents(old: UInt64, new: UInt64, black: Bool) {
        let parent = self.parent(of: old)
        setParentColor(new, parent, black: isBlack(old))
        setParentColor(old, new, black: black)
        changeChild(old, new, parent: parent)
    }

    /// `__rb_insert`: `node` is a red leaf just linked.
    private mutating func insertColor(_ inserted: UInt64) {
        var node = inserted
        var parent = self.parent(of: node)
        while true {
            // Loop invariant: node is red.
            if parent == 0 {
                setParentColor(node, 0, black: true)
                break
            }
            if isBlack(parent) { break }
            let grandparent = self.parent(of: parent)
            var tmp = right(of: grandparent)
            if parent != tmp { // parent is the grandparent's left child
                if tmp != 0 && isRed(tmp) {
                    // Case 1: the uncle is red: colour flips, then go on at the grandparent.
                    setParentColor(tmp, grandparent, black: true)
                    setParentColor(parent, grandparent, black: true)
                    node = grandparent
                    parent = self.parent(of: node)
                    setParentColor(node, parent, black: false)
                    continue
                }
                tmp = right(of: parent)
                if node == tmp {
                    // Case 2: node is the parent's right child: left rotate at the parent.
                    tmp = left(of: node)
                    setRight(parent, tmp)
                    setLeft(node, parent)
                    if tmp != 0 { setParentColor(tmp, parent, black: true) }
                    setParentColor(parent, node, black: false)
                    parent = node
                    tmp = right(of: node)
                }
                // Case 3: right rotate at the grandparent.
                setLeft(grandparent, tmp)
                setRight(parent, grandparent)
                if tmp != 0 { setParentColor(tmp, grandparent, black: true) }
                rotateSetParents(old: grandparent, new: parent, black: false)
                break
            } else {
                tmp = left(of: grandparent)
                if tmp != 0 && isRed(tmp) {
                    // Case 1, mirrored.
                    setParentColor(tmp, grandparent, black: true)
                    setParentColor(parent, grandparent, black: true)
                    node = grandparent
                    parent = self.parent(of: node)
                    setParentColor(node, parent, black: false)
                    continue
                }
                tmp = left(of: parent)
                if node == tmp {
                    // Case 2, mirrored: right rotate at the parent.
                    tmp = right(of: node)
                    setLeft(parent, tmp)
                    setRight(node, parent)
                    if tmp != 0 { setParentColor(tmp, parent, black: true) }
                    setParentColor(parent, node, black: false)
                    parent = node
                    tmp = left(of: node)
                }
                // Case 3, mirrored: left rotate at the grandparent.
                setRight(grandparent, tmp)
                setLeft(parent, grandparent)
                if tmp != 0 { setParentColor(tmp, grandparent, black: true) }
                rotateSetParents(old: grandparent, new: parent, black: false)
                break
            }
        }
    }

    /// `__rb_erase_augmented` without augmentation: unlinks `node`, returning the node where the
    /// colours must be rebalanced (nil when they need not be).
    private mutating func erase(_ node: UInt64) -> UInt64? {
        let child = right(of: node)
        var tmp = left(of: node)
        let rebalance: UInt64
        if tmp == 0 {
            // Case 1: at most one child (the right one).
            let parent = self.parent(of: node)
            let wasBlack = isBlack(node)
            changeChild(node, child, parent: parent)
            if child != 0 {
                setParentColor(child, parent, black: wasBlack)
                rebalance = 0
            } else {
                rebalance = wasBlack ? parent : 0
            }
        } else if child == 0 {
            // Case 1, the child is the left one.
            let parent = self.parent(of: node)
            setParentColor(tmp, parent, black: isBlack(node))
            changeChild(node, tmp, parent: parent)
            rebalance = 0
        } else {
            var successor = child
            var parent: UInt64
            let child2: UInt64
            tmp = left(of: child)
            if tmp == 0 {
                // Case 2: the successor is the right child.
                parent = successor
                child2 = right(of: successor)
            } else {
                // Case 3: the successor is the leftmost node under the right child.
                repeat {
                    parent = successor
                    successor = tmp
                    tmp = left(of: tmp)
                } while tmp != 0
                child2 = right(of: successor)
                setLeft(parent, child2)
                setRight(successor, child)
                setParent(child, successor)
            }
            tmp = left(of: node)
            setLeft(successor, tmp)
            setParent(tmp, successor)
            let nodeParent = self.parent(of: node)
            let nodeBlack = isBlack(node)
            changeChild(node, successor, parent: nodeParent)
            if child2 != 0 {
                setParentColor(child2, parent, black: true)
                rebalance = 0
            } else {
                rebalance = isBlack(successor) ? parent : 0
            }
            setParentColor(successor, nodeParent, black: nodeBlack)
        }
        return rebalance == 0 ? nil : rebalance
    }

    /// `____rb_erase_color`: the paths through `parent`'s side that lost a node are one black
    /// short.
    private mutating func eraseColor(_ start: UInt64) {
        var node: UInt64 = 0
        var parent = start
        while true {
            // Loop invariants: node is black (or NULL at first), parent is not NULL, and the
            // leaf paths through parent and node have one black node fewer than the others.
            var sibling = right(of: parent)
            if node != sibling { // node is the parent's left child
                if isRed(sibling) {
                    // Case 1: left rotate at the parent.
                    let tmp1 = left(of: sibling)
                    setRight(parent, tmp1)
                    setLeft(sibling, parent)
                    setParentColor(tmp1, parent, black: true)
                    rotateSetParents(old: parent, new: sibling, black: false)
                    sibling = tmp1
                }
                var tmp1 = right(of: sibling)
                if tmp1 == 0 || isBlack(tmp1) {
                    let tmp2 = left(of: sibling)
                    if tmp2 == 0 || isBlack(tmp2) {
                        // Case 2: sibling colour flip.
                        setParentColor(sibling, parent, black: false)
                        if isRed(parent) {
                            setBlack(parent)
                        } else {
                            node = parent
                            parent = self.parent(of: node)
                            if parent != 0 { continue }
                        }
                        break
                    }
                    // Case 3: right rotate at the sibling.
                    tmp1 = right(of: tmp2)
                    setLeft(sibling, tmp1)
                    setRight(tmp2, sibling)
                    setRight(parent, tmp2)
                    if tmp1 != 0 { setParentColor(tmp1, sibling, black: true) }
                    tmp1 = sibling
                    sibling = tmp2
                }
                // Case 4: left rotate at the parent and colour flips.
                let tmp2 = left(of: sibling)
                setRight(parent, tmp2)
                setLeft(sibling, parent)
                setParentColor(tmp1, sibling, black: true)
                if tmp2 != 0 { setParent(tmp2, parent) }
                rotateSetParents(old: parent, new: sibling, black: true)
                break
            } else {
                sibling = left(of: parent)
                if isRed(sibling) {
                    // Case 1, mirrored: right rotate at the parent.
                    let tmp1 = right(of: sibling)
                    setLeft(parent, tmp1)
                    setRight(sibling, parent)
                    setParentColor(tmp1, parent, black: true)
                    rotateSetParents(old: parent, new: sibling, black: false)
                    sibling = tmp1
                }
                var tmp1 = left(of: sibling)
                if tmp1 == 0 || isBlack(tmp1) {
                    let tmp2 = right(of: sibling)
                    if tmp2 == 0 || isBlack(tmp2) {
                        // Case 2, mirrored.
                        setParentColor(sibling, parent, black: false)
                        if isRed(parent) {
                            setBlack(parent)
                        } else {
                            node = parent
                            parent = self.parent(of: node)
                            if parent != 0 { continue }
                        }
                        break
                    }
                    // Case 3, mirrored: left rotate at the sibling.
                    tmp1 = left(of: tmp2)
                    setRight(sibling, tmp1)
                    setLeft(tmp2, sibling)
                    setLeft(parent, tmp2)
                    if tmp1 != 0 { setParentColor(tmp1, sibling, black: true) }
                    tmp1 = sibling
                    sibling = tmp2
                }
                // Case 4, mirrored: right rotate at the parent and colour flips.
                let tmp2 = right(of: sibling)
                setLeft(parent, tmp2)
                setRight(sibling, parent)
                setParentColor(tmp1, sibling, black: true)
                if tmp2 != 0 { setParent(tmp2, parent) }
                rotateSetParents(old: parent, new: sibling, black: true)
                break
            }
        }
    }
}
