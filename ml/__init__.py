"""paysight machine learning: plain Python over DataFrames."""
