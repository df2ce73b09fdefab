"""The ultrassl data viewer (a Streamlit page) and its drawing and loading helpers."""
