"""One ``APIRouter`` per noun; ``api/app.py`` assembles them."""
