"""The nouns of a compute market: requests, nodes, allocations and clearings (`model`), the
validity set V (`constraints`), welfare, margin and surplus (`economics`), the JSON format
(`market_io`), generators and a brute-force enumerator over V."""
