"""HTTP plumbing with no knowledge of chat: body reading, SSE, response writing."""
