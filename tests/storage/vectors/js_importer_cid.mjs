// Prints the CID (and total DAG bytes) that ipfs-unixfs-importer, the JS reference importer,
// gives a file when configured like `ipfs add --cid-version 1 --raw-leaves --chunker size-C`
// with L links per node: `node js_importer_cid.mjs FILE C L` (see README.md).
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { readFileSync } from 'node:fs'
const [path, chunk, links] = process.argv.slice(2)
const data = readFileSync(path)
const bs = new MemoryBlockstore()
let last
for await (const entry of importer([{ content: data }], bs, {
  cidVersion: 1, rawLeaves: true, reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: Number(chunk) }),
  layout: balanced({ maxChildrenPerNode: Number(links) }),
})) { last = entry }
console.log(last.cid.toString(), String(last.size))
