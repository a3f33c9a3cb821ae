-- Run once by the postgres image on an empty volume: boeflow's own database beside
-- Airflow's metadata database (POSTGRES_DB=airflow), both owned by the boeflow role.
CREATE DATABASE boeflow OWNER boeflow;
