"""What people read from a store: labelled matrices, embeddings, figures, exports, the HTML report."""
